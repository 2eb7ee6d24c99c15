// SPDX-License-Identifier: GPL-2.0
/*
 * C shims for static inline kernel functions fvp's Rust code calls.
 * Named fvp_helper_* (not rust_helper_*, which vmlinux already exports).
 */
#include "fvp_helpers.h"
#include <linux/tcp.h>
#include <net/sock.h>
#include <crypto/chacha20poly1305.h>
#include <crypto/curve25519.h>
#include <linux/crc32c.h>
#include <crypto/hash.h>
#include <linux/string.h>

void fvp_helper_bio_set_dev(struct bio *bio, struct block_device *bdev)
{
	bio_set_dev(bio, bdev);
}

sector_t fvp_helper_bdev_nr_sectors(struct block_device *bdev)
{
	return bdev_nr_sectors(bdev);
}

/*
 * Copies len bytes between a bio's data, bio_offset bytes past the start of its
 * current iterator, and a page. bio_for_each_segment and friends are macros and
 * static inlines, hence a shim. The caller checks that the range lies in the bio.
 */
void fvp_helper_bio_copy_page(struct bio *bio, unsigned int bio_offset, struct page *page,
			      unsigned int page_offset, unsigned int len, bool to_bio)
{
	struct bvec_iter iter = bio->bi_iter;

	bio_advance_iter(bio, &iter, bio_offset);
	while (len) {
		struct bio_vec bv = bio_iter_iovec(bio, iter);
		unsigned int n = min(len, bv.bv_len);

		if (to_bio)
			memcpy_page(bv.bv_page, bv.bv_offset, page, page_offset, n);
		else
			memcpy_page(page, page_offset, bv.bv_page, bv.bv_offset, n);
		page_offset += n;
		len -= n;
		bio_advance_iter_single(bio, &iter, n);
	}
}

struct page *fvp_helper_alloc_page(gfp_t gfp)
{
	return alloc_page(gfp);
}

void fvp_helper_get_page(struct page *page)
{
	get_page(page);
}

void fvp_helper_put_page(struct page *page)
{
	put_page(page);
}

unsigned long fvp_helper_page_to_pfn(struct page *page)
{
	return page_to_pfn(page);
}

struct page *fvp_helper_pfn_to_page(unsigned long pfn)
{
	return pfn_to_page(pfn);
}

dev_t fvp_helper_dm_target_devt(struct dm_target *ti)
{
	return disk_devt(dm_disk(dm_table_get_md(ti->table)));
}

struct workqueue_struct *fvp_helper_alloc_workqueue(const char *name, unsigned int flags,
						   int max_active)
{
	return alloc_workqueue("%s", flags, max_active, name);
}

void fvp_helper_init_completion(struct completion *c)
{
	init_completion(c);
}

/*
 * reinit_completion() is a plain store, fine in C where callers know no complete()
 * runs concurrently; Rust's safe reinit() cannot know, so the store takes the lock
 * complete() takes: a concurrent complete() lands wholly before or after it.
 */
void fvp_helper_reinit_completion(struct completion *c)
{
	unsigned long flags;

	raw_spin_lock_irqsave(&c->wait.lock, flags);
	c->done = 0;
	raw_spin_unlock_irqrestore(&c->wait.lock, flags);
}

void fvp_helper_flush_workqueue(struct workqueue_struct *wq)
{
	flush_workqueue(wq);
}

bool fvp_helper_signal_pending(void)
{
	return signal_pending(current);
}

/*
 * Replication sockets. Like DRBD and nbd, fvp's sockets sit on the I/O path: their
 * allocations must not recurse into block I/O (GFP_NOIO), nor use the task's page
 * fragment, which reclaim may be using.
 */
static void fvp_sock_prepare(struct socket *sock)
{
	sock->sk->sk_allocation = GFP_NOIO;
	sock->sk->sk_use_task_frag = false;
}

/* A TCP socket for listening or connecting, prepared as above. */
static int fvp_sock_create(struct socket **res)
{
	int err = sock_create_kern(&init_net, AF_INET, SOCK_STREAM, IPPROTO_TCP, res);

	if (!err)
		fvp_sock_prepare(*res);
	return err;
}

int fvp_helper_tcp_listen(__be32 addr, u16 port, int backlog, struct socket **res)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = addr,
				   .sin_port = htons(port) };
	struct socket *sock;
	int err;

	err = fvp_sock_create(&sock);
	if (err)
		return err;
	sock_set_reuseaddr(sock->sk);
	err = kernel_bind(sock, (struct sockaddr *)&sin, sizeof(sin));
	if (!err)
		err = kernel_listen(sock, backlog);
	if (err) {
		sock_release(sock);
		return err;
	}
	*res = sock;
	return 0;
}

/* Waits for a connection for at most the socket's receive timeout (-EAGAIN). */
int fvp_helper_tcp_accept(struct socket *lsock, struct socket **res, __be32 *addr, u16 *port)
{
	struct sockaddr_in sin = {};
	struct socket *sock;
	int err;

	err = kernel_accept(lsock, &sock, 0);
	if (err)
		return err;
	fvp_sock_prepare(sock);
	tcp_sock_set_nodelay(sock->sk);
	err = kernel_getpeername(sock, (struct sockaddr *)&sin);
	if (err < 0) {
		sock_release(sock);
		return err;
	}
	*addr = sin.sin_addr.s_addr;
	*port = ntohs(sin.sin_port);
	*res = sock;
	return 0;
}

int fvp_helper_tcp_connect(__be32 addr, u16 port, unsigned int timeout_ms, struct socket **res)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = addr,
				   .sin_port = htons(port) };
	struct socket *sock;
	int err;

	err = fvp_sock_create(&sock);
	if (err)
		return err;
	tcp_sock_set_nodelay(sock->sk);
	/* A blocking connect waits for at most the send timeout. */
	sock->sk->sk_sndtimeo = msecs_to_jiffies(timeout_ms);
	err = kernel_connect(sock, (struct sockaddr *)&sin, sizeof(sin), 0);
	if (err) {
		sock_release(sock);
		return err;
	}
	*res = sock;
	return 0;
}

void fvp_helper_sock_set_timeouts(struct socket *sock, unsigned int rcv_ms, unsigned int snd_ms)
{
	WRITE_ONCE(sock->sk->sk_rcvtimeo, msecs_to_jiffies(rcv_ms));
	WRITE_ONCE(sock->sk->sk_sndtimeo, msecs_to_jiffies(snd_ms));
}

/*
 * Sends buf then buf2 (if len2), all of it or an error: a partial send leaves the
 * stream unusable, so the caller closes it.
 */
int fvp_helper_sock_send(struct socket *sock, const void *buf, size_t len, const void *buf2,
			 size_t len2)
{
	struct msghdr msg = { .msg_flags = MSG_NOSIGNAL };
	struct kvec vec[2] = {
		{ .iov_base = (void *)buf, .iov_len = len },
		{ .iov_base = (void *)buf2, .iov_len = len2 },
	};
	size_t total = len + len2, sent = 0;
	int ret;

	while (sent < total) {
		struct kvec part[2];
		int n = 0;

		/* The part of the vector not sent yet. */
		if (sent < len) {
			part[n].iov_base = vec[0].iov_base + sent;
			part[n++].iov_len = len - sent;
			if (len2)
				part[n++] = vec[1];
		} else {
			part[n].iov_base = vec[1].iov_base + (sent - len);
			part[n++].iov_len = total - sent;
		}
		ret = kernel_sendmsg(sock, &msg, part, n, total - sent);
		if (ret <= 0)
			return ret ? ret : -EPIPE;
		sent += ret;
	}
	return 0;
}

/* Receives up to len bytes; returns how many (0: closed) or -errno (-EAGAIN: timeout). */
int fvp_helper_sock_recv(struct socket *sock, void *buf, size_t len)
{
	struct msghdr msg = { .msg_flags = MSG_NOSIGNAL };
	struct kvec vec = { .iov_base = buf, .iov_len = len };

	return kernel_recvmsg(sock, &msg, &vec, 1, len, MSG_WAITALL);
}

int fvp_helper_sock_recv_page(struct socket *sock, struct page *page, unsigned int off, size_t len)
{
	void *data = kmap_local_page(page);
	int ret = fvp_helper_sock_recv(sock, data + off, len);

	kunmap_local(data);
	return ret;
}

void fvp_helper_sock_shutdown(struct socket *sock)
{
	kernel_sock_shutdown(sock, SHUT_RDWR);
}

void fvp_helper_sock_release(struct socket *sock)
{
	sock_release(sock);
}

/*
 * Creates and wakes a kthread, holding a reference on its task so that
 * fvp_helper_kthread_stop works even after the thread function returned.
 */
struct task_struct *fvp_helper_kthread_start(int (*fn)(void *), void *data, const char *name)
{
	struct task_struct *task = kthread_create(fn, data, "%s", name);

	if (IS_ERR(task))
		return task;
	get_task_struct(task);
	wake_up_process(task);
	return task;
}

/*
 * Called first on each fvp kthread: they all serve the I/O path (replication links,
 * replica stores, recovery), so none of their allocations may recurse into block I/O,
 * the GFP_KERNEL ones included. Scope: the rest of the thread's life.
 */
void fvp_helper_kthread_noio(void)
{
	memalloc_noio_save();
}

/*
 * A scope in which the current task's allocations do no block I/O to reclaim memory
 * (memalloc_noio_save/restore are inline: Rust calls these).
 */
unsigned int fvp_helper_memalloc_noio_save(void)
{
	return memalloc_noio_save();
}

void fvp_helper_memalloc_noio_restore(unsigned int flags)
{
	memalloc_noio_restore(flags);
}

/*
 * After an allocation that cannot be given up failed: waits a little for reclaim or
 * freed memory before the caller retries (memalloc_retry_wait is inline).
 */
struct mempool_s *fvp_helper_mempool_create_kmalloc(int min_nr, size_t size)
{
	return mempool_create_kmalloc_pool(min_nr, size);
}

/* GFP_NOIO may sleep, so this never returns NULL: it waits for an element. */
void *fvp_helper_mempool_alloc_noio(struct mempool_s *pool)
{
	return mempool_alloc(pool, GFP_NOIO);
}

void fvp_helper_mempool_free(void *element, struct mempool_s *pool)
{
	mempool_free(element, pool);
}

void fvp_helper_mempool_destroy(struct mempool_s *pool)
{
	mempool_destroy(pool);
}

void fvp_helper_memalloc_retry_wait(void)
{
	memalloc_retry_wait(GFP_NOIO);
}

/*
 * wait_event_timeout() with a condition evaluated by Rust: cond(ctx) may run with the
 * task already in TASK_UNINTERRUPTIBLE, so it must not sleep. Returns 0 if the timeout
 * elapsed with the condition false, else the jiffies left (at least 1).
 */
long fvp_helper_wait_event_timeout(struct wait_queue_head *wq, bool (*cond)(void *ctx), void *ctx,
				   long timeout)
{
	return wait_event_timeout(*wq, cond(ctx), timeout);
}

/* One lockdep class for every fvp wait queue: none is locked inside another. */
void fvp_helper_init_waitqueue_head(struct wait_queue_head *wq)
{
	init_waitqueue_head(wq);
}

void fvp_helper_wake_up_all(struct wait_queue_head *wq)
{
	wake_up_all(wq);
}

/*
 * On a kthread: sleeps ms milliseconds, or less if kthread_stop() is called (it sets
 * the flag, then wakes the thread). TASK_IDLE: not counted as load, and no signal ends
 * it early.
 */
void fvp_helper_kthread_nap(unsigned int ms)
{
	long left = msecs_to_jiffies(ms);

	while (left > 0) {
		set_current_state(TASK_IDLE);
		if (kthread_should_stop())
			break;
		left = schedule_timeout(left);
	}
	__set_current_state(TASK_RUNNING);
}

/* Returns -EINTR if the thread function never ran (stopped before it started). */
int fvp_helper_kthread_stop(struct task_struct *task)
{
	int ret = kthread_stop(task);

	put_task_struct(task);
	return ret;
}

int fvp_helper_lookup_bdev(const char *path, u32 *devt)
{
	dev_t dev;
	int err = lookup_bdev(path, &dev);

	if (!err)
		*devt = dev;
	return err;
}

void fvp_helper_page_copy(struct page *page, unsigned int off, void *buf, size_t len, bool to_page)
{
	if (to_page)
		memcpy_to_page(page, off, buf, len);
	else
		memcpy_from_page(buf, page, off, len);
}

/* try_module_get and module_put are inline when modules are off. */
bool fvp_helper_try_module_get(struct module *module)
{
	return try_module_get(module);
}

void fvp_helper_module_put(struct module *module)
{
	module_put(module);
}

/*
 * CRC-32C update (no pre- or post-inversion) by libcrc32c, which uses the crypto API's
 * "crc32c" (accelerated where the CPU can). crc32c() takes an unsigned int length.
 */
u32 fvp_helper_crc32c(u32 crc, const u8 *data, size_t len)
{
	while (len > 0) {
		unsigned int n = min_t(size_t, len, 1U << 30);

		crc = crc32c(crc, data, n);
		data += n;
		len -= n;
	}
	return crc;
}

/* ChaCha20-Poly1305 in place: sealed holds text_len bytes of text, then room for the tag. */
void fvp_helper_aead_seal(u8 *sealed, size_t text_len, const u8 *ad, size_t ad_len, u64 nonce,
			  const u8 *key)
{
	chacha20poly1305_encrypt(sealed, sealed, text_len, ad, ad_len, nonce, key);
}

/* Verifies the tag at the end of sealed and only then decrypts the text in place. */
bool fvp_helper_aead_open(u8 *sealed, size_t sealed_len, const u8 *ad, size_t ad_len, u64 nonce,
			  const u8 *key)
{
	return chacha20poly1305_decrypt(sealed, sealed, sealed_len, ad, ad_len, nonce, key);
}

void *fvp_helper_hmac_sha256_alloc(void)
{
	struct crypto_shash *tfm = crypto_alloc_shash("hmac(sha256)", 0, 0);

	return IS_ERR(tfm) ? NULL : tfm;
}

void fvp_helper_hmac_sha256_free(void *tfm)
{
	crypto_free_shash(tfm);
}

/* HMAC-SHA256 of the concatenation of parts; the descriptor (keyed state) is wiped. */
int fvp_helper_hmac_sha256(void *tfm, const u8 *key, unsigned int key_len,
			   const struct fvp_helper_slice *parts, unsigned int nparts, u8 *out)
{
	struct crypto_shash *shash = tfm;
	unsigned int i;
	int err;

	err = crypto_shash_setkey(shash, key, key_len);
	if (err)
		return err;
	{
		SHASH_DESC_ON_STACK(desc, shash);

		desc->tfm = shash;
		err = crypto_shash_init(desc);
		for (i = 0; !err && i < nparts; i++)
			err = crypto_shash_update(desc, parts[i].ptr, parts[i].len);
		if (!err)
			err = crypto_shash_final(desc, out);
		shash_desc_zero(desc);
	}
	return err;
}

void fvp_helper_memzero_explicit(void *p, size_t len)
{
	memzero_explicit(p, len);
}

/* X25519 (lib/crypto): false for a low-order public key (an all-zero result). */
bool fvp_helper_x25519(u8 *out, const u8 *secret, const u8 *public_key)
{
	return curve25519(out, secret, public_key);
}

bool fvp_helper_x25519_public(u8 *out, const u8 *secret)
{
	return curve25519_generate_public(out, secret);
}

/* Random and clamped; may sleep until the CSPRNG is ready. */
void fvp_helper_x25519_generate_secret(u8 *secret)
{
	curve25519_generate_secret(secret);
}

/* CLOCK_REALTIME in ns: a host's incarnation number (a restarted host's is larger). */
u64 fvp_helper_wall_clock_ns(void)
{
	return ktime_get_real_ns();
}
