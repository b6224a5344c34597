package ringstore

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nvrfw/nvr/ringstore/vfs/memfs"
)

// backfillCrash is a crash state taken during a backfill.
type backfillCrash struct {
	op      memfs.Op
	opts    memfs.CrashOptions
	fs      *memfs.FS
	index   []byte
	durable uint64
}

// TestBackfillCrash applies another node's overlapping recording through a
// Replica into a store on memfs and takes crash states (what a power cut
// could leave) at its mutating operations, the crash harness's way. Every
// state is recovered and checked: the store's own footage and every record
// the replica acknowledged (durable) are there, no frame is returned twice
// by MergedFrames; and after the source re-sends everything to a fresh
// Replica, the merged stream is exactly both recordings.
func TestBackfillCrash(t *testing.T) {
	ctx := context.Background()
	src, _ := replStore(t)
	srcFrames := recordSecs(t, src, "cam1", 's', replT0.Add(3*time.Second), 12)
	recs := records(t, src)

	m := memfs.New()
	if err := m.MkdirAll(crashVolDir); err != nil {
		t.Fatal(err)
	}
	if err := m.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	idxDir := crashIndexDir(t)
	fsys := crashSplitFS{vol: m, osDir: idxDir}
	indexPath := filepath.Join(idxDir, "live.db")
	if _, err := Format(ctx, crashVolDir, FormatOptions{FS: fsys, Size: 8 << 20, SlotSize: 1 << 20, IndexPath: indexPath}); err != nil {
		t.Fatal(err)
	}
	opts := Options{FS: fsys, IndexPath: indexPath, CommitInterval: time.Hour}
	dst, err := Open(ctx, crashVolDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	own := recordSecs(t, dst, "cam1", 'd', replT0, 6)

	var mu sync.Mutex
	var states []*backfillCrash
	variants := []memfs.CrashOptions{{Data: memfs.DataNone}, {Data: memfs.DataRandom, Seed: 1}, {Data: memfs.DataAll}}
	m.SetHook(func(op memfs.Op) {
		var idx bytes.Buffer
		if err := dst.snapshotIndex(&idx); err != nil {
			t.Errorf("snapshot index at %v: %v", op, err)
			return
		}
		d := dst.Durable()
		mu.Lock()
		defer mu.Unlock()
		v := variants[op.N%len(variants)]
		states = append(states, &backfillCrash{op: op, opts: v, fs: m.CrashClone(v), index: idx.Bytes(), durable: d})
	})
	rep := NewReplica(dst)
	seqs := make([]uint64, len(recs)) // last append seq of each record
	for i, r := range recs {
		res, err := rep.Apply(r, ApplyOptions{Source: "src"})
		if err != nil {
			t.Fatal(err)
		}
		seqs[i] = res.Seq
		if i%3 != 0 {
			if err := dst.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	m.SetHook(nil)
	if len(states) < 5 {
		t.Fatalf("only %d crash states", len(states))
	}
	want := append(append([]Frame(nil), own...), srcFrames...)
	for i, st := range states {
		t.Run(fmt.Sprintf("%d-op%d-%s", i, st.op.N, st.opts.Data), func(t *testing.T) {
			checkBackfillCrash(t, st, idxDir, recs, seqs, own, want)
		})
	}
}

func checkBackfillCrash(t *testing.T, st *backfillCrash, idxDir string, recs []Record, seqs []uint64, own, want []Frame) {
	ctx := context.Background()
	ip := filepath.Join(idxDir, fmt.Sprintf("state-%d.db", st.op.N))
	if err := os.WriteFile(ip, st.index, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(ip)
	s, err := Open(ctx, crashVolDir, Options{FS: crashSplitFS{vol: st.fs, osDir: idxDir}, IndexPath: ip, CommitInterval: time.Hour})
	if err != nil {
		t.Fatalf("recover after a crash at %v: %v", st.op, err)
	}
	defer s.Close()
	need := append([]Frame(nil), own...)
	for i, r := range recs {
		if seqs[i] != 0 && seqs[i] <= st.durable {
			need = append(need, r.Frames...)
		}
	}
	got := replRead(t, s, "cam1", true)
	have := keysOf(got)
	for k, n := range have {
		if n > 1 {
			t.Fatalf("track %d at %v returned %d times", k.track, time.Unix(0, k.t).UTC(), n)
		}
	}
	for k := range keysOf(need) {
		if have[k] == 0 {
			t.Fatalf("acknowledged frame track %d at %v lost (durable %d)", k.track, time.Unix(0, k.t).UTC(), st.durable)
		}
	}
	rep := NewReplica(s)
	for _, r := range recs {
		if _, err := rep.Apply(r, ApplyOptions{Source: "src"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sameSet(replRead(t, s, "cam1", true), want); err != nil {
		t.Errorf("after the source re-sent everything: %v", err)
	}
	stored := append(replRead(t, s, "cam1", false), replRead(t, s, BackfillName("cam1", "src"), false)...)
	if err := sameSet(stored, want); err != nil {
		t.Errorf("stored after the re-send: %v", err)
	}
}
