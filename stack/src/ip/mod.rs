//! IPv4 interface configuration, routing, ARP and ICMP.
