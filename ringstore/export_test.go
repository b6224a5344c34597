package ringstore

// Test-only access to the store's knobs and internals, for this package's
// tests and the crash harness.

// withSkipGenCheck makes readers and recovery ignore generations.
func (o Options) withSkipGenCheck() Options { o.knobs.skipGenCheck = true; return o }

// withSkipDirSync makes Format skip SyncDir.
func (o FormatOptions) withSkipDirSync() FormatOptions { o.knobs.skipDirSync = true; return o }

// crash stops the store as a power cut would: no final commit.
func (s *Store) crash() { s.crashClose() }
