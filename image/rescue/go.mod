// Module rescue pins the u-root commands of the firmware image (init, the
// rescue tools) so that image/mkimage builds them with this go.sum, apart
// from the main module's dependencies. It holds no code of its own.
module github.com/nvrfw/nvr/image/rescue

go 1.24.0

require github.com/u-root/u-root v0.16.0
