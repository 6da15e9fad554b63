/* Hand-written wrappers for what bindgen cannot bind: macros and thread-local variables. */
#ifndef SHARDNET_DPDK_SHIM_H
#define SHARDNET_DPDK_SHIM_H
#include <rte_mbuf.h>

/* rte_pktmbuf_mtod(m, void *): the start of the first segment's data. */
void *shardnet_pktmbuf_mtod(struct rte_mbuf *m);
/* rte_errno: the calling thread's last DPDK error (a thread-local variable). */
int shardnet_rte_errno(void);
/* Sets rte_errno (for tests of error reporting). */
void shardnet_set_rte_errno(int value);
/* RTE_PKTMBUF_HEADROOM, the headroom mbuf pools reserve before each frame. */
unsigned int shardnet_pktmbuf_headroom(void);
/* RTE_MBUF_DEFAULT_BUF_SIZE, a data room for a 2048-byte frame plus the headroom. */
unsigned int shardnet_mbuf_default_buf_size(void);
/* Requests checksum offloads for a transmitted frame: sets ol_flags and the l2_len/l3_len
 * bitfields of the tx_offload union (which bindgen can only reach through generated names). */
void shardnet_mbuf_set_tx_offload(struct rte_mbuf *m, uint64_t ol_flags, uint16_t l2_len,
                                  uint16_t l3_len);
/* rte_pktmbuf_pool_create with mempool `flags` (which rte_pktmbuf_pool_create does not take):
 * the same steps as DPDK's own implementation (create empty, best ops, pktmbuf pool init,
 * populate, init every mbuf). NULL with rte_errno set on failure. */
struct rte_mempool *shardnet_pktmbuf_pool_create_flags(const char *name, unsigned int n,
                                                       unsigned int cache_size,
                                                       uint16_t data_room_size, int socket_id,
                                                       unsigned int flags);
/* RTE_MEMPOOL_F_NO_IOVA_CONTIG. */
unsigned int shardnet_mempool_f_no_iova_contig(void);
/* 1 when the EAL gives devices virtual addresses (rte_eal_iova_mode() == RTE_IOVA_VA). */
int shardnet_iova_is_va(void);

#endif
