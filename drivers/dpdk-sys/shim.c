#include "wrapper.h"
#include <rte_mbuf_pool_ops.h>

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

struct rte_mempool *shardnet_pktmbuf_pool_create_flags(const char *name, unsigned int n,
                                                       unsigned int cache_size,
                                                       uint16_t data_room_size, int socket_id,
                                                       unsigned int flags)
{
    struct rte_pktmbuf_pool_private priv = {
        .mbuf_data_room_size = data_room_size,
        .mbuf_priv_size = 0,
    };
    unsigned int elt_size = sizeof(struct rte_mbuf) + (unsigned int)data_room_size;
    struct rte_mempool *mp = rte_mempool_create_empty(
        name, n, elt_size, cache_size, sizeof(struct rte_pktmbuf_pool_private), socket_id, flags);
    if (mp == NULL)
        return NULL;
    int ret = rte_mempool_set_ops_byname(mp, rte_mbuf_best_mempool_ops(), NULL);
    if (ret != 0) {
        rte_mempool_free(mp);
        rte_errno = -ret;
        return NULL;
    }
    rte_pktmbuf_pool_init(mp, &priv);
    ret = rte_mempool_populate_default(mp);
    if (ret < 0) {
        rte_mempool_free(mp);
        rte_errno = -ret;
        return NULL;
    }
    rte_mempool_obj_iter(mp, rte_pktmbuf_init, NULL);
    return mp;
}

unsigned int shardnet_mempool_f_no_iova_contig(void)
{
    return RTE_MEMPOOL_F_NO_IOVA_CONTIG;
}

int shardnet_iova_is_va(void)
{
    return rte_eal_iova_mode() == RTE_IOVA_VA;
}
