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
#include <uapi/linux/fvp.h>

void fvp_helper_bio_set_dev(struct bio *bio, struct block_device *bdev);
sector_t fvp_helper_bdev_nr_sectors(struct block_device *bdev);

#endif /* FVP_HELPERS_H */
