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

void fvp_helper_reinit_completion(struct completion *c)
{
	reinit_completion(c);
}

void fvp_helper_flush_workqueue(struct workqueue_struct *wq)
{
	flush_workqueue(wq);
}

bool fvp_helper_signal_pending(void)
{
	return signal_pending(current);
}
