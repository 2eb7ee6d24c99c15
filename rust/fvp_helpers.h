/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Input to bindgen for fvp's own bindings, and the C shims fvp needs where a
 * kernel API is a static inline function or a macro. Linux 6.12's `kernel`
 * crate binds neither <linux/device-mapper.h> nor <linux/miscdevice.h>.
 */
#ifndef FVP_HELPERS_H
#define FVP_HELPERS_H

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/capability.h>
#include <linux/device-mapper.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <uapi/linux/fvp.h>

#include <linux/completion.h>
#include <linux/wait.h>
#include <linux/delay.h>
#include <linux/highmem.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/mm.h>
#include <linux/workqueue.h>
#include <linux/kthread.h>
#include <linux/net.h>
#include <linux/in.h>
#include <linux/random.h>
#include <linux/mempool.h>

/* A byte range, for helpers that take several (laid out as Rust's (ptr, len)). */
struct fvp_helper_slice {
	const u8 *ptr;
	size_t len;
};

void fvp_helper_bio_set_dev(struct bio *bio, struct block_device *bdev);
sector_t fvp_helper_bdev_nr_sectors(struct block_device *bdev);
void fvp_helper_bio_copy_page(struct bio *bio, unsigned int bio_offset, struct page *page,
			      unsigned int page_offset, unsigned int len, bool to_bio);
struct page *fvp_helper_alloc_page(gfp_t gfp);
void fvp_helper_get_page(struct page *page);
void fvp_helper_put_page(struct page *page);
unsigned long fvp_helper_page_to_pfn(struct page *page);
struct page *fvp_helper_pfn_to_page(unsigned long pfn);
dev_t fvp_helper_dm_target_devt(struct dm_target *ti);
void fvp_helper_init_completion(struct completion *c);
void fvp_helper_reinit_completion(struct completion *c);
void fvp_helper_flush_workqueue(struct workqueue_struct *wq);
bool fvp_helper_signal_pending(void);
struct workqueue_struct *fvp_helper_alloc_workqueue(const char *name, unsigned int flags,
						   int max_active);
struct mempool_s *fvp_helper_mempool_create_kmalloc(int min_nr, size_t size);
void *fvp_helper_mempool_alloc_noio(struct mempool_s *pool);
void fvp_helper_mempool_free(void *element, struct mempool_s *pool);
void fvp_helper_mempool_destroy(struct mempool_s *pool);


/* In-kernel TCP for replication (6.12's kernel crate has no socket API). */
int fvp_helper_tcp_listen(__be32 addr, u16 port, int backlog, struct socket **res);
int fvp_helper_tcp_accept(struct socket *lsock, struct socket **res, __be32 *addr, u16 *port);
int fvp_helper_tcp_connect(__be32 addr, u16 port, unsigned int timeout_ms, struct socket **res);
void fvp_helper_sock_set_timeouts(struct socket *sock, unsigned int rcv_ms, unsigned int snd_ms);
int fvp_helper_sock_send(struct socket *sock, const void *buf, size_t len, const void *buf2,
			 size_t len2);
int fvp_helper_sock_recv(struct socket *sock, void *buf, size_t len);
int fvp_helper_sock_recv_page(struct socket *sock, struct page *page, unsigned int off, size_t len);
void fvp_helper_sock_shutdown(struct socket *sock);
void fvp_helper_sock_release(struct socket *sock);
struct task_struct *fvp_helper_kthread_start(int (*fn)(void *), void *data, const char *name);
int fvp_helper_kthread_stop(struct task_struct *task);
void fvp_helper_kthread_noio(void);
unsigned int fvp_helper_memalloc_noio_save(void);
void fvp_helper_memalloc_noio_restore(unsigned int flags);
void fvp_helper_memalloc_retry_wait(void);
long fvp_helper_wait_event_timeout(struct wait_queue_head *wq, bool (*cond)(void *ctx), void *ctx,
				   long timeout);
void fvp_helper_init_waitqueue_head(struct wait_queue_head *wq);
void fvp_helper_wake_up_all(struct wait_queue_head *wq);
void fvp_helper_kthread_nap(unsigned int ms);
bool fvp_helper_try_module_get(struct module *module);
void fvp_helper_module_put(struct module *module);
int fvp_helper_lookup_bdev(const char *path, u32 *devt);
void fvp_helper_page_copy(struct page *page, unsigned int off, void *buf, size_t len, bool to_page);

/*
 * Replication transport (docs/replication.md, section 2): lib/crypto's ChaCha20-Poly1305
 * seals messages, the crypto API's hmac(sha256) keys the handshake. The transform is
 * handed to Rust as an opaque pointer (bindgen does not see struct crypto_shash).
 */
u32 fvp_helper_crc32c(u32 crc, const u8 *data, size_t len);
void fvp_helper_aead_seal(u8 *sealed, size_t text_len, const u8 *ad, size_t ad_len, u64 nonce,
			  const u8 *key);
bool fvp_helper_aead_open(u8 *sealed, size_t sealed_len, const u8 *ad, size_t ad_len, u64 nonce,
			  const u8 *key);
void *fvp_helper_hmac_sha256_alloc(void);
void fvp_helper_hmac_sha256_free(void *tfm);
int fvp_helper_hmac_sha256(void *tfm, const u8 *key, unsigned int key_len,
			   const struct fvp_helper_slice *parts, unsigned int nparts, u8 *out);
void fvp_helper_memzero_explicit(void *p, size_t len);
bool fvp_helper_x25519(u8 *out, const u8 *secret, const u8 *public_key);
bool fvp_helper_x25519_public(u8 *out, const u8 *secret);
void fvp_helper_x25519_generate_secret(u8 *secret);
u64 fvp_helper_wall_clock_ns(void);

#ifdef __BINDGEN__
/* Macros with casts that bindgen cannot evaluate, as constants it can. */
const gfp_t FVP_GFP_NOIO = GFP_NOIO;
const blk_mode_t FVP_BLK_OPEN_READ = BLK_OPEN_READ;
const blk_mode_t FVP_BLK_OPEN_WRITE = BLK_OPEN_WRITE;
const blk_status_t FVP_BLK_STS_IOERR = BLK_STS_IOERR;
#endif

#endif /* FVP_HELPERS_H */
