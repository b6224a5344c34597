#!/bin/sh
# Regenerates the camera simulator's test clips (see README.md). Needs ffmpeg
# with libx264, libx265 and the native AAC encoder. The committed clips are what
# the tests use; run this only to change them.
set -eu
cd "$(dirname "$0")"

FFMPEG="${FFMPEG:-ffmpeg}"
SECONDS_LONG=3 # clip length: 75 frames at 25 fps, three 25-frame GOPs
common="-hide_banner -loglevel error -y -threads 1"

# video SIZE BITRATE CODEC-ARGS... OUT
video() {
	size=$1 rate=$2 out=$3
	shift 3
	"$FFMPEG" $common -f lavfi -i "testsrc2=size=${size}:rate=25:duration=${SECONDS_LONG}" \
		-pix_fmt yuv420p -b:v "$rate" -maxrate "$rate" -bufsize "$rate" "$@" -an "$out"
}

video 640x360 500k h264.h264 -c:v libx264 -profile:v main \
	-x264-params keyint=25:min-keyint=25:scenecut=0:bframes=0:aud=0 -f h264
video 320x180 200k h264_alt.h264 -c:v libx264 -profile:v baseline \
	-x264-params keyint=25:min-keyint=25:scenecut=0:bframes=0:aud=0 -f h264
video 640x360 400k h265.h265 -c:v libx265 -profile:v main \
	-x265-params keyint=25:min-keyint=25:scenecut=0:bframes=0:open-gop=0:aud=0:log-level=error -f hevc
video 320x180 150k h265_alt.h265 -c:v libx265 -profile:v main \
	-x265-params keyint=25:min-keyint=25:scenecut=0:bframes=0:open-gop=0:aud=0:log-level=error -f hevc

# 16 kHz mono AAC-LC, a 440 Hz tone, in ADTS framing.
"$FFMPEG" $common -f lavfi -i "sine=frequency=440:sample_rate=16000:duration=${SECONDS_LONG}" \
	-c:a aac -b:a 32k -ac 1 -f adts aac.aac

ls -l h264.h264 h264_alt.h264 h265.h265 h265_alt.h265 aac.aac
