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
#define FVP_ABI_VERSION		1

/* Feature bits reported in fvp_version.features. */
#define FVP_FEATURE_PASSTHROUGH	(1ULL << 0)	/* dm target "fvp" maps I/O to its backing device */

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

#define FVP_IOC_VERSION	_IOR(FVP_IOCTL_MAGIC, 0x00, struct fvp_version)
#define FVP_IOC_STATUS	_IOR(FVP_IOCTL_MAGIC, 0x01, struct fvp_status)

#endif /* _UAPI_LINUX_FVP_H */
