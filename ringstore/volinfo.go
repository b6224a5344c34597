package ringstore

import "github.com/nvrfw/nvr/ringstore/vfs"

// ReadVolumeInfo reads the volume header of dir (identity, slot size and
// count) without opening the store: what a reformat or a status view needs.
func ReadVolumeInfo(dir string) (VolumeInfo, error) { return readVolume(vfs.Default, dir) }
