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
#define FVP_ABI_VERSION		2

/* Feature bits reported in fvp_version.features. */
#define FVP_FEATURE_PASSTHROUGH	(1ULL << 0)	/* dm target "fvp" maps I/O to its backing device */
#define FVP_FEATURE_RAM_POOL	(1ULL << 1)	/* RAM pools; write-through and write-back (peers=0) volumes */

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

#define FVP_IOC_VERSION		_IOR(FVP_IOCTL_MAGIC, 0x00, struct fvp_version)
#define FVP_IOC_STATUS		_IOR(FVP_IOCTL_MAGIC, 0x01, struct fvp_status)
#define FVP_IOC_POOL_CREATE	_IOW(FVP_IOCTL_MAGIC, 0x10, struct fvp_pool_req)
#define FVP_IOC_POOL_RESIZE	_IOW(FVP_IOCTL_MAGIC, 0x11, struct fvp_pool_req)
#define FVP_IOC_POOL_DESTROY	_IOW(FVP_IOCTL_MAGIC, 0x12, struct fvp_pool_req)
#define FVP_IOC_POOL_INFO	_IOWR(FVP_IOCTL_MAGIC, 0x13, struct fvp_pool_info)
#define FVP_IOC_VOLUME_INFO	_IOWR(FVP_IOCTL_MAGIC, 0x14, struct fvp_volume_info)

#endif /* _UAPI_LINUX_FVP_H */
