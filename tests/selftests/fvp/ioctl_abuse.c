// SPDX-License-Identifier: GPL-2.0
/*
 * Bad ioctls against /dev/fvp-control: each must fail with the documented errno and
 * leave no kernel report (the host checks the guest's log). Prints KTAP.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <arpa/inet.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/fvp.h>

static int test_no, failures;

static void result(int ok, const char *what)
{
	test_no++;
	if (!ok)
		failures++;
	printf("%sok %d %s\n", ok ? "" : "not ", test_no, what);
}

/* Runs ioctl(fd, cmd, arg) and checks it fails with errno `want`. */
static void expect_errno(int fd, unsigned long cmd, void *arg, int want, const char *what)
{
	char buf[160];
	int ret = ioctl(fd, cmd, arg);
	int err = ret < 0 ? errno : 0;

	if (ret >= 0 || err != want)
		printf("# %s: ret %d errno %d (%s), want errno %d (%s)\n", what, ret, err,
		       strerror(err), want, strerror(want));
	snprintf(buf, sizeof(buf), "%s fails with %s", what, strerror(want));
	result(ret < 0 && err == want, buf);
}

/* Sets or clears CAP_SYS_ADMIN in the effective set (it stays permitted). */
static int set_sys_admin(int on)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		return -1;
	if (on)
		data[0].effective |= 1u << CAP_SYS_ADMIN;
	else
		data[0].effective &= ~(1u << CAP_SYS_ADMIN);
	return syscall(SYS_capset, &hdr, data);
}

int main(void)
{
	struct fvp_version v;
	char small[8];
	int fd = open("/dev/" FVP_CONTROL_NAME, O_RDWR);

	printf("TAP version 13\n1..45\n");
	if (fd < 0) {
		printf("# open /dev/%s: %s\n", FVP_CONTROL_NAME, strerror(errno));
		printf("Bail out! cannot open the control device\n");
		return 1;
	}

	memset(&v, 0, sizeof(v));
	result(ioctl(fd, FVP_IOC_VERSION, &v) == 0 && v.abi_version == FVP_ABI_VERSION &&
	       (v.features & FVP_FEATURE_PASSTHROUGH),
	       "FVP_IOC_VERSION succeeds and reports the ABI version");

	expect_errno(fd, _IOR(FVP_IOCTL_MAGIC, 0x7f, struct fvp_version), &v, ENOTTY,
		     "unknown fvp command number");
	expect_errno(fd, _IO('x', 1), NULL, ENOTTY, "foreign ioctl type");
	expect_errno(fd, _IOR(FVP_IOCTL_MAGIC, 0x00, char[8]), small, EINVAL,
		     "FVP_IOC_VERSION encoded with the wrong size");
	expect_errno(fd, _IOW(FVP_IOCTL_MAGIC, 0x00, struct fvp_version), &v, EINVAL,
		     "FVP_IOC_VERSION encoded with the wrong direction");
	expect_errno(fd, FVP_IOC_VERSION, NULL, EFAULT, "FVP_IOC_VERSION to a NULL pointer");
	expect_errno(fd, FVP_IOC_STATUS, (void *)(uintptr_t)0xffff888000000000ull, EFAULT,
		     "FVP_IOC_STATUS to a kernel address");

	if (set_sys_admin(0)) {
		printf("# capset: %s\n", strerror(errno));
		result(0, "drop CAP_SYS_ADMIN");
	} else {
		expect_errno(fd, FVP_IOC_VERSION, &v, EPERM, "FVP_IOC_VERSION without CAP_SYS_ADMIN");
		set_sys_admin(1);
	}
	result(ioctl(fd, FVP_IOC_STATUS, &(struct fvp_status){0}) == 0,
	       "FVP_IOC_STATUS succeeds again with CAP_SYS_ADMIN");

	/* Pools: every bad request is refused and changes nothing. */
	struct fvp_pool_req req;
	struct fvp_pool_info pinfo;
	struct fvp_volume_info vinfo;

	memset(&req, 0, sizeof(req));
	strcpy(req.name, "bad name");
	req.ram_bytes = 1 << 20;
	expect_errno(fd, FVP_IOC_POOL_CREATE, &req, EINVAL, "pool name with a space");
	memset(req.name, 'x', sizeof(req.name));
	expect_errno(fd, FVP_IOC_POOL_CREATE, &req, EINVAL, "pool name without a NUL");
	memset(&req, 0, sizeof(req));
	strcpy(req.name, "abuse");
	req.ram_bytes = 0;
	expect_errno(fd, FVP_IOC_POOL_CREATE, &req, EINVAL, "pool of size 0");
	req.ram_bytes = 4097;
	expect_errno(fd, FVP_IOC_POOL_CREATE, &req, EINVAL, "pool size not a multiple of 4096");
	req.ram_bytes = 1ULL << 44;	/* 16 TiB */
	expect_errno(fd, FVP_IOC_POOL_CREATE, &req, ENOMEM, "pool larger than free memory");
	expect_errno(fd, FVP_IOC_POOL_DESTROY, &req, ENOENT, "destroying a pool that does not exist");
	expect_errno(fd, FVP_IOC_POOL_RESIZE, &req, ENOENT, "resizing a pool that does not exist");
	req.ram_bytes = 1 << 20;
	result(ioctl(fd, FVP_IOC_POOL_CREATE, &req) == 0, "creating a 1 MiB pool succeeds");
	expect_errno(fd, FVP_IOC_POOL_CREATE, &req, EEXIST, "creating it again");
	result(ioctl(fd, FVP_IOC_POOL_DESTROY, &req) == 0, "destroying it succeeds");
	memset(&pinfo, 0, sizeof(pinfo));
	pinfo.index = 999;
	expect_errno(fd, FVP_IOC_POOL_INFO, &pinfo, ENOENT, "pool info past the last pool");
	memset(&vinfo, 0, sizeof(vinfo));
	vinfo.index = 999;
	expect_errno(fd, FVP_IOC_VOLUME_INFO, &vinfo, ENOENT, "volume info past the last volume");

	/* Host updates (ABI 5): only the domain of a configured host may change. */
	struct fvp_host_req host;
	struct fvp_host_info hinfo;

	memset(&host, 0, sizeof(host));
	host.id = 5;
	host.addr = htonl(0x0a090905);	/* 10.9.9.5 */
	host.port = 7790;
	strcpy(host.domain, "rack-a");
	result(ioctl(fd, FVP_IOC_HOST_ADD, &host) == 0, "adding host 5 (no cluster set) succeeds");
	host.id = 6;
	expect_errno(fd, FVP_IOC_HOST_UPDATE, &host, ENOENT, "updating a host that does not exist");
	host.id = 5;
	strcpy(host.domain, "rack b");
	expect_errno(fd, FVP_IOC_HOST_UPDATE, &host, EINVAL, "updating to a domain with a space");
	strcpy(host.domain, "rack-b");
	host.port = 7791;
	expect_errno(fd, FVP_IOC_HOST_UPDATE, &host, EINVAL, "updating a host's port");
	host.port = 7790;
	memset(&hinfo, 0, sizeof(hinfo));
	int updated = ioctl(fd, FVP_IOC_HOST_UPDATE, &host) == 0;

	/* Other programs may have left hosts configured: look for id 5. */
	while (ioctl(fd, FVP_IOC_HOST_INFO, &hinfo) == 0 && hinfo.host.id != 5)
		hinfo.index++;
	result(updated && hinfo.host.id == 5 && strcmp(hinfo.host.domain, "rack-b") == 0 &&
	       hinfo.host.port == 7790 && hinfo.host.addr == host.addr,
	       "updating its domain succeeds and host info shows it");
	result(ioctl(fd, FVP_IOC_HOST_REMOVE, &host) == 0, "removing host 5 succeeds");
	/* ABI 6: FVP_HOST_DEFER is the only flag. */
	host.flags = 2;
	expect_errno(fd, FVP_IOC_HOST_ADD, &host, EINVAL, "adding a host with an unknown flag");
	expect_errno(fd, FVP_IOC_HOST_REMOVE, &host, EINVAL, "removing a host with an unknown flag");
	host.flags = 0;

	/* Discarding a detached volume's blocks (ABI 5): checked before anything is looked up. */
	struct fvp_volume_discard discard;

	memset(&discard, 0, sizeof(discard));
	discard.backing_major = 4096;
	expect_errno(fd, FVP_IOC_VOLUME_DISCARD, &discard, EINVAL, "discard with a major past 12 bits");
	discard.backing_major = 7;
	discard.reserved[1] = 1;
	expect_errno(fd, FVP_IOC_VOLUME_DISCARD, &discard, EINVAL, "discard with reserved not zero");
	discard.reserved[1] = 0;
	discard.backing_minor = 4242;
	expect_errno(fd, FVP_IOC_VOLUME_DISCARD, &discard, ENOENT, "discard with no volume over the device");

	/* Host keys (ABI 8): checked before anything is looked up; no key comes back private. */
	struct fvp_key_req key;

	memset(&key, 0, sizeof(key));
	memset(key.key, 7, sizeof(key.key));
	expect_errno(fd, FVP_IOC_KEY_SET, &key, EINVAL, "key for host id 0");
	key.id = 65;
	expect_errno(fd, FVP_IOC_KEY_SET, &key, EINVAL, "key for host id 65");
	key.id = 5;
	key.flags = 4;
	expect_errno(fd, FVP_IOC_KEY_SET, &key, EINVAL, "key with an unknown flag");
	key.flags = 0;
	key.reserved[3] = 1;
	expect_errno(fd, FVP_IOC_KEY_SET, &key, EINVAL, "key with reserved not zero");
	key.reserved[3] = 0;
	memset(key.key, 0, sizeof(key.key));
	expect_errno(fd, FVP_IOC_KEY_SET, &key, EINVAL, "an all-zero key");
	memset(key.key, 7, sizeof(key.key));
	key.flags = FVP_KEY_PRIVATE;
	expect_errno(fd, FVP_IOC_KEY_SET, &key, EINVAL, "a private key for a host that is not this one");
	key.id = 0;
	expect_errno(fd, FVP_IOC_KEY_INFO, &key, EINVAL, "key info for host id 0");
	key.id = 5;
	result(ioctl(fd, FVP_IOC_KEY_INFO, &key) == 0 && (key.flags & ~FVP_KEY_PRESENT) == 0,
	       "key info for a valid host id succeeds");

	/* Shared devices (ABI 9: uuid appended, so the commands' numbers changed). */
	struct fvp_device_req dev;
	char old_dev[296];
	int found = 0;

	memset(&dev, 0, sizeof(dev));
	strcpy(dev.name, "abuse0");
	strcpy(dev.path, "/dev/null-abuse");
	memset(dev.uuid, 0xab, sizeof(dev.uuid));
	memcpy(old_dev, &dev, sizeof(old_dev));
	expect_errno(fd, _IOW(FVP_IOCTL_MAGIC, 0x25, char[296]), old_dev, EINVAL,
		     "FVP_IOC_DEVICE_ADD of ABI 3-8 (296 bytes) is refused");
	dev.reserved = 1;
	expect_errno(fd, FVP_IOC_DEVICE_ADD, &dev, EINVAL, "device with reserved not zero");
	dev.reserved = 0;
	strcpy(dev.path, "relative");
	expect_errno(fd, FVP_IOC_DEVICE_ADD, &dev, EINVAL, "device with a relative path");
	strcpy(dev.path, "/dev/null-abuse");
	result(ioctl(fd, FVP_IOC_DEVICE_ADD, &dev) == 0, "adding a device with a uuid succeeds");
	memset(&dev, 0, sizeof(dev));
	while (ioctl(fd, FVP_IOC_DEVICE_INFO, &dev) == 0) {
		if (strcmp(dev.name, "abuse0") == 0) {
			found = dev.uuid[0] == 0xab && dev.uuid[15] == 0xab;
			break;
		}
		dev.index++;
	}
	strcpy(dev.name, "abuse0");
	result(found && ioctl(fd, FVP_IOC_DEVICE_REMOVE, &dev) == 0,
	       "device info returns its uuid, and removing it succeeds");
	close(fd);
	printf("# totals: fail:%d\n", failures);
	return failures ? 1 : 0;
}
