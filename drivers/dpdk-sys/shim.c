#include "wrapper.h"

void *shardnet_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }
int shardnet_rte_errno(void) { return rte_errno; }
void shardnet_set_rte_errno(int value) { rte_errno = value; }
unsigned int shardnet_pktmbuf_headroom(void) { return RTE_PKTMBUF_HEADROOM; }
unsigned int shardnet_mbuf_default_buf_size(void) { return RTE_MBUF_DEFAULT_BUF_SIZE; }

void shardnet_mbuf_set_tx_offload(struct rte_mbuf *m, uint64_t ol_flags, uint16_t l2_len,
                                  uint16_t l3_len)
{
	m->ol_flags |= ol_flags;
	m->l2_len = l2_len;
	m->l3_len = l3_len;
}
