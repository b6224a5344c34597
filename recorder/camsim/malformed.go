package camsim

import "time"

// Malformed packet kinds, sent in rotation by the malformed fault.
const (
	malformedGarbage   = iota // random payload bytes
	malformedTruncated        // the first fragment of a fragmented NAL unit, never continued
	malformedBadType          // a NAL unit of a type RTP must not carry
	malformedKinds
)

// malformedPayload builds the i-th malformed payload for codec, using r for
// the random bytes.
func malformedPayload(codec VideoCodec, i int, rnd func() uint64) []byte {
	body := func(n int) []byte {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(rnd())
		}
		return b
	}
	switch i % malformedKinds {
	case malformedGarbage:
		return body(16 + int(rnd()%512))
	case malformedTruncated:
		b := body(64)
		if codec == H264 {
			b[0] = 3<<5 | 28 // FU-A indicator, NRI 3
			b[1] = 0x80 | 5  // start bit, IDR slice
		} else {
			b[0], b[1] = 49<<1, 1 // FU, layer 0, TID 1
			b[2] = 0x80 | 19      // start bit, IDR_W_RADL
		}
		return b
	default:
		b := body(32)
		if codec == H264 {
			b[0] = 3<<5 | []byte{0, 25, 30}[(i/malformedKinds)%3] // unspecified, STAP-B, reserved
		} else {
			b[0], b[1] = []byte{50, 63, 47}[(i/malformedKinds)%3]<<1, 1 // PACI, unspecified, reserved
		}
		return b
	}
}

// sendMalformed sends count malformed packets on the video track with the
// next frame's timestamp and no marker.
func (u *pump) sendMalformed(jump time.Duration, count int) {
	if count == 0 {
		return
	}
	codec := u.p.loops[0].clip.codec
	rtpTime := u.video.ts0 + uint32(u.n*frameTicks) + ticks(jump, videoClock)
	for range count {
		pl := malformedPayload(codec, int(u.p.stats.malformed.Load()), u.garbage.Uint64)
		u.write(0, &u.video, pl, false, rtpTime, u.videoTime(u.n))
		u.p.stats.malformed.Add(1)
	}
}
