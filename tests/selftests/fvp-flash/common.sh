# The private disk, split: its first 64 MiB are the flash pool's device, the rest the
# volume's backing device. Both persist across the guest's kill (a file on the host).
flash_devices() {
  disk=$(fvp_private_disk)
  total=$(fvp_sectors "$disk")
  dmsetup create fvp_fflash --table "0 131072 linear $(fvp_devno "$disk") 0"
  dmsetup create fvp_fback --table "0 $((total - 131072)) linear $(fvp_devno "$disk") 131072"
  fflash=/dev/mapper/fvp_fflash
  fback=/dev/mapper/fvp_fback
  fsize=$(fvp_sectors $fback)
}
# Blocks the writer uses: 12,000 (47 MiB, under the pool's 63 MiB: nothing is evicted,
# and the destager writes back only what the pool cannot hold, so most promised writes
# are in the pool alone at the kill).
FLASH_BLOCKS=12000
