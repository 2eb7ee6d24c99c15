// SPDX-License-Identifier: GPL-2.0
/*
 * C shims for static inline kernel functions fvp's Rust code calls.
 * Named fvp_helper_* (not rust_helper_*, which vmlinux already exports).
 */
#include "fvp_helpers.h"

void fvp_helper_bio_set_dev(struct bio *bio, struct block_device *bdev)
{
	bio_set_dev(bio, bdev);
}

sector_t fvp_helper_bdev_nr_sectors(struct block_device *bdev)
{
	return bdev_nr_sectors(bdev);
}
