/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * fvp: host RAM acceleration for block devices, with replicated write-back.
 *
 * The ioctl ABI of /dev/fvp-control. This header is the single source of
 * truth: fvp.ko and fvpctl both check their layouts against it.
 *
 * Every command is CAP_SYS_ADMIN only. Commands are _IOC encoded; the size
 * encoded in a command must equal the size of its structure here, or the
 * command fails with EINVAL. Unknown commands fail with ENOTTY.
 * A new ABI version may add commands; it never changes an existing structure.
 */
#ifndef _UAPI_LINUX_FVP_H
#define _UAPI_LINUX_FVP_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define FVP_CONTROL_NAME	"fvp-control"
#define FVP_IOCTL_MAGIC		0xF7
#define FVP_ABI_VERSION		9

/* Feature bits reported in fvp_version.features. */
#define FVP_FEATURE_PASSTHROUGH	(1ULL << 0)	/* dm target "fvp" maps I/O to its backing device */
#define FVP_FEATURE_RAM_POOL	(1ULL << 1)	/* RAM pools; write-through and write-back (peers=0) volumes */
#define FVP_FEATURE_REPLICATION	(1ULL << 2)	/* cluster commands; write-back with peers=1|2 */
#define FVP_FEATURE_FLASH_POOL	(1ULL << 3)	/* ABI 7: flash pools (FVP_IOC_FLASH_*) */
#define FVP_FEATURE_SECURE_TRANSPORT	(1ULL << 4)	/* ABI 8: sealed replication messages, fvp_cluster_cfg.transport */

#define FVP_VERSION_STR_LEN	32

/* FVP_IOC_VERSION: what the loaded module is and speaks. */
struct fvp_version {
	__u32 abi_version;			/* FVP_ABI_VERSION of the module */
	__u32 module_major;
	__u32 module_minor;
	__u32 module_patch;
	__u64 features;				/* FVP_FEATURE_* */
	char  version[FVP_VERSION_STR_LEN];	/* NUL-terminated, e.g. "0.1.0" */
};

/* FVP_IOC_STATUS: module-wide counters. */
struct fvp_status {
	__u32 volumes;		/* fvp targets currently constructed */
	__u32 reserved;		/* zero */
	__u64 bios_mapped;	/* bios mapped by all fvp targets since load */
};

#define FVP_NAME_LEN		32	/* pool names: 1..31 of [A-Za-z0-9_.-], NUL-padded */
#define FVP_DM_NAME_LEN		128	/* device-mapper names (DM_NAME_LEN) */
#define FVP_LAT_BUCKETS		24	/* latency histogram buckets, see fvp_volume_info */

/* Cache policies (fvp_volume_info.policy_*). */
#define FVP_POLICY_WRITE_THROUGH	1
#define FVP_POLICY_WRITE_BACK		2

/*
 * FVP_IOC_POOL_CREATE, FVP_IOC_POOL_RESIZE, FVP_IOC_POOL_DESTROY.
 * Create and resize take ram_bytes, a non-zero multiple of 4096; destroy takes 0.
 * Errors: EEXIST (create: name taken), ENOENT (no such pool), EBUSY (destroy: volumes
 * use the pool), ENOMEM (not enough free memory: fvp leaves at least 1/8 of RAM free),
 * EINVAL (bad name or size), EINTR (resize interrupted; the pool keeps what it reached).
 */
struct fvp_pool_req {
	char  name[FVP_NAME_LEN];
	__u64 ram_bytes;
};

/* FVP_IOC_POOL_INFO: in: index (0, 1, ...); out: that pool, or ENOENT past the last. */
struct fvp_pool_info {
	__u32 index;
	__u32 volumes;		/* volumes using the pool */
	char  name[FVP_NAME_LEN];
	__u64 target_bytes;	/* size last asked for */
	__u64 pages;		/* 4 KiB pages held now */
	__u64 free_pages;
	__u64 clean_pages;
	__u64 dirty_pages;
	__u64 busy_pages;	/* being filled from a backing device */
	__u64 metadata_bytes;	/* RAM spent on the index, all structures */
	__u64 evictions;
};

/*
 * FVP_IOC_VOLUME_INFO: in: index (0, 1, ...); out: that volume, or ENOENT past the last.
 * Latency bucket i counts I/Os that completed in [2^i, 2^(i+1)) microseconds (bucket 0
 * also holds faster ones, the last bucket slower ones).
 */
struct fvp_volume_info {
	__u32 index;
	__u32 block_size;	/* bytes */
	__u32 dev_major;	/* the dm device */
	__u32 dev_minor;
	char  pool[FVP_NAME_LEN];
	__u32 policy_requested;	/* FVP_POLICY_* */
	__u32 policy_effective;
	__u64 reads;
	__u64 writes;
	__u64 read_bytes;
	__u64 write_bytes;
	__u64 read_hits;	/* blocks read from the pool */
	__u64 read_misses;	/* blocks read from the backing device */
	__u64 write_hits;	/* blocks written into the pool */
	__u64 bypassed;		/* bios sent around the pool (sequential cutoff, pool full) */
	__u64 dirty_blocks;
	__u64 destaged_blocks;
	__u64 evictions;
	__u64 read_latency[FVP_LAT_BUCKETS];
	__u64 write_latency[FVP_LAT_BUCKETS];
};


/*
 * Cluster (ABI 3). See docs/replication.md for the protocol these settings drive.
 *
 * FVP_IOC_CLUSTER_SET: the cluster's name, this host's id, timers and shared secret.
 * Errors: EINVAL (name not 1..31 of [A-Za-z0-9_.-]; local_id not 1..FVP_MAX_HOSTS;
 * heartbeat_ms not 10..10000; timeout_ms not at least 3 x heartbeat_ms and at most 600000;
 * secret_len not 16..FVP_SECRET_LEN; reserved not zero), EBUSY (replicated volumes exist and
 * the name, id or secret would change). Settings equal to the current ones change nothing
 * (connections and leases stay); any other change restarts the cluster's connections.
 * FVP_IOC_CLUSTER_INFO returns the settings (secret_len set, secret zeroed) and the state.
 */
#define FVP_MAX_HOSTS		64
#define FVP_SECRET_LEN		64
#define FVP_PATH_LEN		256

struct fvp_cluster_cfg {
	char  name[FVP_NAME_LEN];
	__u32 local_id;
	__u32 heartbeat_ms;
	__u32 timeout_ms;
	__u32 secret_len;
	__u8  secret[FVP_SECRET_LEN];
	__u32 transport;	/* ABI 8: FVP_TRANSPORT_* (reserved zero before) */
	__u32 reserved[3];	/* zero */
};

/* fvp_cluster_cfg.transport (ABI 8): how replication messages are protected after the
 * handshake (docs/replication.md, section 2). Every message is authenticated either way. */
#define FVP_TRANSPORT_AUTHENTICATED	0	/* header and payload authenticated, in clear */
#define FVP_TRANSPORT_ENCRYPTED		1	/* payloads encrypted too */

/*
 * FVP_IOC_KEY_SET, FVP_IOC_KEY_INFO (ABI 8): each host's X25519 key pair, which the
 * replication handshake proves (docs/replication.md, section 2). SET with FVP_KEY_PRIVATE
 * sets this host's private key (id must be the local id; the cluster must be set); SET
 * without it sets host id's public key. A changed key restarts the cluster's connections;
 * setting the same key again changes nothing. INFO returns host id's public key (for this
 * host, the public key of its private key) with FVP_KEY_PRESENT, or flags 0 if none is set;
 * it never returns a private key. Errors: EINVAL (id out of range, unknown flags, reserved
 * not zero, an all-zero key, FVP_KEY_PRIVATE for another id or before FVP_IOC_CLUSTER_SET).
 */
#define FVP_KEY_LEN		32
#define FVP_KEY_PRIVATE		(1U << 0)	/* SET: key is this host's private key */
#define FVP_KEY_PRESENT		(1U << 1)	/* INFO: a key is set for id */

struct fvp_key_req {
	__u32 id;		/* host id, 1..FVP_MAX_HOSTS */
	__u32 flags;		/* FVP_KEY_* */
	__u8  key[FVP_KEY_LEN];	/* see above */
	__u32 reserved[4];	/* zero */
};

/* fvp_cluster_info.flags */
#define FVP_CLUSTER_CONFIGURED	(1U << 0)	/* FVP_IOC_CLUSTER_SET has been done */
#define FVP_CLUSTER_LISTENING	(1U << 1)	/* the replication listener is bound */
#define FVP_CLUSTER_LEASE	(1U << 2)	/* this host holds its lease (majority) */
#define FVP_CLUSTER_JOINT	(1U << 3)	/* ABI 6: an earlier host list is still in force */
#define FVP_CLUSTER_PENDING	(1U << 4)	/* ABI 6: deferred host changes not yet in force */

struct fvp_cluster_info {
	struct fvp_cluster_cfg cfg;
	__u32 flags;		/* FVP_CLUSTER_* */
	__u32 hosts;		/* configured hosts, this one included */
	__u32 devices;		/* configured shared devices */
	__u32 hosts_up;		/* hosts heard within timeout_ms, this one included */
	__u64 replica_blocks;	/* blocks this host holds for other owners */
	__u64 refused_connections;	/* failed handshakes since load */
	__u64 protocol_errors;	/* connections closed on a malformed or unexpected message */
};

/*
 * FVP_IOC_HOST_ADD, FVP_IOC_HOST_REMOVE (only id is read), FVP_IOC_HOST_UPDATE (ABI 5).
 * addr is an IPv4 address in network byte order, port in host order; domain is a fault
 * domain name (1..31 of [A-Za-z0-9_.-]). Errors: EINVAL, EEXIST (add: id or address taken),
 * ENOENT (remove, update: no such host), EBUSY (remove: this host, or a peer of a running
 * volume that has no other eligible peer).
 * Adding or removing a host restarts the cluster's connections and puts the new host list in
 * force, jointly with the one before until every host of the new list announces it
 * (FVP_CLUSTER_JOINT); EINVAL if the hosts removed are a majority of a list in force, EBUSY
 * if two earlier lists still are. Remove: EAGAIN (ABI 6) while the host holds or may hold
 * replicas of a volume here: it is no longer chosen as a peer, and leaves once they moved. With FVP_HOST_DEFER (ABI 6) the change is recorded but
 * not in force (FVP_CLUSTER_PENDING) until the next add or remove without it, or
 * FVP_IOC_CLUSTER_SET: a batch of changes becomes one. FVP_IOC_HOST_UPDATE changes
 * only the fault domain of host id, in place: connections, membership and leases stay, and
 * running volumes keep their peers; the new domain counts when peers are next chosen.
 * EINVAL if addr or port differ from the configured ones (remove and add the host instead).
 */
struct fvp_host_req {
	__u32 id;
	__u32 addr;
	__u16 port;
	__u16 flags;		/* FVP_HOST_DEFER (ABI 6; add, remove), else zero */
	char  domain[FVP_NAME_LEN];
};

/* fvp_host_req.flags */
#define FVP_HOST_DEFER		(1U << 0)	/* record the change; in force with the next one */

/* fvp_host_info.state */
#define FVP_HOST_SELF		0
#define FVP_HOST_DOWN		1	/* not heard within timeout_ms */
#define FVP_HOST_CONNECTING	2	/* heard, both connections not yet authenticated */
#define FVP_HOST_UP		3
#define FVP_HOST_FENCED		4	/* fenced by this host (see docs/replication.md) */

/* FVP_IOC_HOST_INFO: in: index (0, 1, ...); out: that host, or ENOENT past the last. */
struct fvp_host_info {
	__u32 index;
	struct fvp_host_req host;
	__u32 state;		/* FVP_HOST_* */
	__u32 reserved;		/* zero */
	__u64 last_heard_ms;	/* ms since a valid message arrived; ~0 if never */
	__u64 rtt_us;		/* last PING round trip; 0 if none */
	__u64 replica_blocks;	/* blocks held here for volumes that host owns */
};

/*
 * FVP_IOC_DEVICE_ADD, FVP_IOC_DEVICE_REMOVE (only name is read): shared backing devices
 * by cluster-wide name, with this host's path to each. Errors: EINVAL, EEXIST, ENOENT.
 * FVP_IOC_DEVICE_INFO: in: index; out: that device, or ENOENT past the last.
 *
 * ABI 9 appended uuid, the device's configured identity (all zero: none): a peer holds
 * a volume's replicas only if its own entry for the device has the same uuid and its path
 * the same size as the owner's (docs/replication.md). The commands' numbers changed with
 * the size; ABI 3 to 8 modules know them with a 296-byte structure (no uuid).
 */
#define FVP_DEVICE_UUID_LEN	16

struct fvp_device_req {
	__u32 index;		/* FVP_IOC_DEVICE_INFO only */
	__u32 reserved;		/* zero */
	char  name[FVP_NAME_LEN];
	char  path[FVP_PATH_LEN];
	__u8  uuid[FVP_DEVICE_UUID_LEN];	/* ABI 9 */
};

/*
 * Flash pools (ABI 7). See docs/flash.md for the on-device format.
 *
 * FVP_IOC_FLASH_OPEN: opens the pool on the block device at path (formatted by
 * `fvpctl pool create NAME --flash DEV`) under name, rebuilding its index from the
 * device: cached blocks, clean and dirty, come back. A pool is closed with
 * FVP_IOC_POOL_DESTROY (EBUSY while volumes use it); its blocks stay on the device.
 * Errors: EEXIST (name taken, or the device already open as a pool), ENOENT (no such
 * device), EINVAL (bad name or path; not an fvp flash pool; damaged metadata: the kernel
 * log says what, and `fvpctl pool check --flash` reports it), EBUSY (device in use),
 * EIO, ENOMEM.
 */
struct fvp_flash_open {
	char  name[FVP_NAME_LEN];
	char  path[FVP_PATH_LEN];
	__u64 slots;		/* out: cache blocks */
	__u64 live_blocks;	/* out: blocks found cached */
	__u64 dirty_blocks;	/* out: of those, dirty */
	__u64 stale_entries;	/* out: older entries recovery zeroes */
	__u64 open_us;		/* out: time spent opening */
	__u64 reserved[3];	/* zero */
};

/* fvp_flash_info.state */
#define FVP_FLASH_OK		0
#define FVP_FLASH_FAILED	1	/* a commit failed: writes and flushes fail until reopened */

/* FVP_IOC_FLASH_INFO: in: index (0, 1, ...); out: that flash pool, or ENOENT past the last. */
struct fvp_flash_info {
	__u32 index;
	__u32 volumes;
	char  name[FVP_NAME_LEN];
	char  path[FVP_PATH_LEN];
	__u8  uuid[16];
	__u32 state;		/* FVP_FLASH_* */
	__u32 records;		/* volume records in use on the device */
	__u64 slots;
	__u64 free_slots;
	__u64 clean_blocks;
	__u64 dirty_blocks;
	__u64 held_slots;	/* released, waiting for their entries to be zeroed */
	__u64 commits;		/* since the pool was opened */
	__u64 metadata_bytes;	/* RAM spent on the index and the journal */
	__u64 evictions;
	__u64 reserved[4];	/* zero */
};

/* fvp_volume_repl.state */
#define FVP_REPL_NONE		0	/* peers=0 */
#define FVP_REPL_PROTECTED	1
#define FVP_REPL_REPROTECTING	2
#define FVP_REPL_DEGRADED	3	/* no eligible peer: write-through */
#define FVP_REPL_SUSPENDED	4	/* no lease: I/O waits */
#define FVP_REPL_FENCED		5	/* taken over by a peer: needs a reload */

/* FVP_IOC_VOLUME_REPL: in: index as for FVP_IOC_VOLUME_INFO; out: replication state. */
struct fvp_volume_repl {
	__u32 index;
	__u32 peers;		/* requested: 0, 1 or 2 */
	__u32 domain;		/* 0 same, 1 different */
	__u32 state;		/* FVP_REPL_* */
	__u32 peer_ids[2];	/* current peers, 0 for none */
	char  name[FVP_NAME_LEN];	/* cluster-wide device name, "" for peers=0 */
	__u64 epoch;
	__u64 replicated_writes;	/* block writes acknowledged by every peer */
	__u64 reprotections;	/* times a lost peer was replaced */
	__u64 resent_blocks;	/* dirty blocks sent again to a new peer */
};

/*
 * FVP_IOC_VOLUME_HEALTH (ABI 4): the error state of the index-th volume (same order as
 * FVP_IOC_VOLUME_INFO). In: index. Out: the rest. Errors: ENOENT (no such volume),
 * EINVAL (reserved not zero on input).
 */
#define FVP_VOLUME_FAILING	(1U << 0)	/* writes of dirty blocks to the backing device fail */
#define FVP_VOLUME_DETACHED	(1U << 1)	/* its device was removed with dirty blocks it could not write back; kept and retried */

struct fvp_volume_health {
	__u32 index;
	__u32 flags;		/* FVP_VOLUME_* */
	__u64 destage_errors;	/* block writes of dirty blocks to the backing device that failed */
	__u64 io_errors;	/* bios completed with an error the backing device returned */
	__u64 dirty_blocks;
	__u32 backing_major;	/* the backing device */
	__u32 backing_minor;
	__u64 reserved[4];	/* zero */
};

/*
 * FVP_IOC_VOLUME_DISCARD (ABI 5): drops the dirty blocks of the detached volume over
 * backing device backing_major:backing_minor, on the operator's word: the volume whose
 * dm device was removed while that device refused its dirty blocks (a disk gone for
 * good). The backing device keeps older data for those blocks; the kernel logs how
 * many were dropped, and the volume is then unregistered (the module may be unloaded,
 * the pool destroyed). Out: dirty_blocks, how many were dropped. Errors: EINVAL
 * (device number out of range, reserved not zero), ENOENT (no volume over that
 * device), EBUSY (the volume has a table: send it the discard-dirty message instead),
 * EOPNOTSUPP (a replicated volume: its peers hold the blocks too).
 */
struct fvp_volume_discard {
	__u32 backing_major;
	__u32 backing_minor;
	__u64 dirty_blocks;	/* out */
	__u64 reserved[2];	/* zero */
};

#define FVP_IOC_VERSION		_IOR(FVP_IOCTL_MAGIC, 0x00, struct fvp_version)
#define FVP_IOC_STATUS		_IOR(FVP_IOCTL_MAGIC, 0x01, struct fvp_status)
#define FVP_IOC_POOL_CREATE	_IOW(FVP_IOCTL_MAGIC, 0x10, struct fvp_pool_req)
#define FVP_IOC_POOL_RESIZE	_IOW(FVP_IOCTL_MAGIC, 0x11, struct fvp_pool_req)
#define FVP_IOC_POOL_DESTROY	_IOW(FVP_IOCTL_MAGIC, 0x12, struct fvp_pool_req)
#define FVP_IOC_POOL_INFO	_IOWR(FVP_IOCTL_MAGIC, 0x13, struct fvp_pool_info)
#define FVP_IOC_VOLUME_INFO	_IOWR(FVP_IOCTL_MAGIC, 0x14, struct fvp_volume_info)
#define FVP_IOC_VOLUME_REPL	_IOWR(FVP_IOCTL_MAGIC, 0x15, struct fvp_volume_repl)
#define FVP_IOC_VOLUME_HEALTH	_IOWR(FVP_IOCTL_MAGIC, 0x16, struct fvp_volume_health)
#define FVP_IOC_VOLUME_DISCARD	_IOWR(FVP_IOCTL_MAGIC, 0x17, struct fvp_volume_discard)
#define FVP_IOC_FLASH_OPEN	_IOWR(FVP_IOCTL_MAGIC, 0x18, struct fvp_flash_open)
#define FVP_IOC_FLASH_INFO	_IOWR(FVP_IOCTL_MAGIC, 0x19, struct fvp_flash_info)
#define FVP_IOC_CLUSTER_SET	_IOW(FVP_IOCTL_MAGIC, 0x20, struct fvp_cluster_cfg)
#define FVP_IOC_CLUSTER_INFO	_IOR(FVP_IOCTL_MAGIC, 0x21, struct fvp_cluster_info)
#define FVP_IOC_HOST_ADD	_IOW(FVP_IOCTL_MAGIC, 0x22, struct fvp_host_req)
#define FVP_IOC_HOST_REMOVE	_IOW(FVP_IOCTL_MAGIC, 0x23, struct fvp_host_req)
#define FVP_IOC_HOST_INFO	_IOWR(FVP_IOCTL_MAGIC, 0x24, struct fvp_host_info)
#define FVP_IOC_DEVICE_ADD	_IOW(FVP_IOCTL_MAGIC, 0x25, struct fvp_device_req)
#define FVP_IOC_DEVICE_REMOVE	_IOW(FVP_IOCTL_MAGIC, 0x26, struct fvp_device_req)
#define FVP_IOC_DEVICE_INFO	_IOWR(FVP_IOCTL_MAGIC, 0x27, struct fvp_device_req)
#define FVP_IOC_HOST_UPDATE	_IOW(FVP_IOCTL_MAGIC, 0x28, struct fvp_host_req)
#define FVP_IOC_KEY_SET		_IOW(FVP_IOCTL_MAGIC, 0x2a, struct fvp_key_req)
#define FVP_IOC_KEY_INFO	_IOWR(FVP_IOCTL_MAGIC, 0x2b, struct fvp_key_req)

#endif /* _UAPI_LINUX_FVP_H */
