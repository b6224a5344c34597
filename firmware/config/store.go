package config

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrClosed is returned by a Store's methods after Close.
var ErrClosed = errors.New("configuration store closed")

// ErrLocked is returned by Open when another process (a running nvrd) holds
// the database for longer than Options.LockTimeout.
var ErrLocked = errors.New("configuration database is in use by another process")

// Options configures Open. The zero value of each field means its default.
type Options struct {
	// Path is the bbolt file on the persistent configuration volume
	// (required).
	Path string
	// Now is the clock stamped on audit entries and new users and tokens;
	// default time.Now.
	Now func() time.Time
	// Rand supplies salts, tokens and generated passwords; default
	// crypto/rand.Reader.
	Rand io.Reader
	// Argon2 are the cost parameters of new password hashes; zero fields take
	// the documented defaults (t=3, 64 MiB, p=2). Tests lower them.
	Argon2 Argon2Params
	// AuditMax is how many audit entries are kept (the oldest are dropped in
	// the transaction that goes over); default 10000.
	AuditMax int
	// LockTimeout is how long Open waits for another process holding the
	// file; default 2s.
	LockTimeout time.Duration
}

// Store is the appliance configuration kept in a bbolt file. It is safe for
// concurrent use; changes are serialized, and subscribers are notified in
// commit order.
type Store struct {
	db   *bolt.DB
	opts Options

	// applyMu serializes Apply so notifications go out in commit order.
	applyMu sync.Mutex

	subMu  sync.Mutex
	subs   map[int]func(Change)
	nextID int

	dummyOnce sync.Once
	dummyHash string

	closeOnce sync.Once
	closeErr  error
}

// Change is a committed mutation, as returned by Apply and passed to
// subscribers.
type Change struct {
	// Seq is the change's audit sequence number.
	Seq   uint64
	Time  time.Time
	Actor string
	// Kind is the mutation's kind ("camera.add", "network.set", ...).
	Kind string
	// What is the mutation in words, secrets masked.
	What string
	// Effect says whether the running system applies it now or at restart.
	Effect Effect
	// Before and After are the whole configuration around the change.
	Before, After Site
	// Secret is a value to show the user once (a created API token, the
	// first-run admin password). Set only in Apply's return value; never
	// stored nor passed to subscribers.
	Secret string
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	Seq   uint64    `json:"seq"`
	Time  time.Time `json:"time"`
	Actor string    `json:"actor"`
	Kind  string    `json:"kind"`
	What  string    `json:"what"`
}

// Open opens (creating when missing) the configuration database and
// migrates it to SchemaVersion in one transaction.
func Open(opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("open configuration: Options.Path is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.AuditMax <= 0 {
		opts.AuditMax = 10000
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 2 * time.Second
	}
	opts.Argon2 = opts.Argon2.withDefaults()
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{Timeout: opts.LockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open configuration %s: %w", opts.Path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open configuration %s: %w", opts.Path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if _, err := migrate(tx); err != nil {
			return err
		}
		_, err := loadSite(tx) // refuse a database we cannot read
		return err
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open configuration %s: %w", opts.Path, err)
	}
	return &Store{db: db, opts: opts, subs: map[int]func(Change){}}, nil
}

// Close closes the database. It is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.applyMu.Lock()
		defer s.applyMu.Unlock()
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

func (s *Store) view(fn func(*bolt.Tx) error) error {
	err := s.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// Site returns a snapshot of the whole configuration (secrets included:
// Camera.Password prints masked; PasswordHash and Token.Hash are there).
func (s *Store) Site() (Site, error) {
	var site Site
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		site, err = loadSite(tx)
		return err
	})
	return site, err
}

// Apply validates and commits m in one transaction together with its audit
// entry by actor ("console:alice", "api:token-name", "system"), then
// notifies subscribers. A refused or failed mutation changes nothing; a
// validation failure wraps ErrInvalid and a *ValidationError.
func (s *Store) Apply(actor string, m Mutation) (Change, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	env := &applyEnv{now: s.opts.Now().UTC(), rand: s.opts.Rand, argon: s.opts.Argon2}
	ch := Change{Time: env.now, Actor: actor, Kind: m.kind(), What: m.Describe()}
	err := s.db.Update(func(tx *bolt.Tx) error {
		before, err := loadSite(tx)
		if err != nil {
			return err
		}
		after := before.clone()
		if ch.Effect, err = m.apply(env, &after); err != nil {
			return err
		}
		if err := Validate(&after); err != nil {
			return err
		}
		if err := saveSite(tx, &after); err != nil {
			return err
		}
		ch.Seq, err = s.appendAudit(tx, ch)
		ch.Before, ch.After = before, after
		return err
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		err = ErrClosed
	}
	if err != nil {
		return Change{}, fmt.Errorf("%s: %w", m.kind(), err)
	}
	s.subMu.Lock()
	fns := make([]func(Change), 0, len(s.subs))
	for id := 0; id < s.nextID; id++ {
		if fn, ok := s.subs[id]; ok {
			fns = append(fns, fn)
		}
	}
	s.subMu.Unlock()
	for _, fn := range fns {
		fn(ch) // Secret is not set yet: subscribers never see it
	}
	ch.Secret = env.secret
	return ch, nil
}

func (s *Store) appendAudit(tx *bolt.Tx, ch Change) (uint64, error) {
	a := tx.Bucket(bucketAudit)
	seq, err := a.NextSequence()
	if err != nil {
		return 0, fmt.Errorf("audit: %w", err)
	}
	raw, err := json.Marshal(AuditEntry{Seq: seq, Time: ch.Time, Actor: ch.Actor, Kind: ch.Kind, What: ch.What})
	if err != nil {
		return 0, fmt.Errorf("audit: %w", err)
	}
	if err := a.Put(seqKey(seq), raw); err != nil {
		return 0, fmt.Errorf("audit: %w", err)
	}
	if seq > uint64(s.opts.AuditMax) {
		c := a.Cursor()
		limit := seqKey(seq - uint64(s.opts.AuditMax))
		for k, _ := c.First(); k != nil && string(k) <= string(limit); k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return 0, fmt.Errorf("audit: prune: %w", err)
			}
		}
	}
	return seq, nil
}

func seqKey(seq uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, seq)
	return k
}

// Audit returns up to limit audit entries, newest first, older than before
// (0: from the newest).
func (s *Store) Audit(before uint64, limit int) ([]AuditEntry, error) {
	var out []AuditEntry
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		var k, v []byte
		if before == 0 {
			k, v = c.Last()
		} else {
			c.Seek(seqKey(before))
			k, v = c.Prev()
		}
		for ; k != nil && len(out) < limit; k, v = c.Prev() {
			var e AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("read audit entry %x: %w", k, err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// Subscribe registers fn to be called with every committed change, in
// commit order, synchronously from the goroutine that called Apply, after
// the commit. fn must return quickly and must not call Apply (hand the
// change to your own goroutine). The returned cancel unregisters fn.
func (s *Store) Subscribe(fn func(Change)) (cancel func()) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	id := s.nextID
	s.nextID++
	s.subs[id] = fn
	return func() {
		s.subMu.Lock()
		defer s.subMu.Unlock()
		delete(s.subs, id)
	}
}

// Authenticate checks a user's password. An unknown user or a wrong
// password both give ErrBadCredentials, after the same argon2id work.
func (s *Store) Authenticate(name, password string) (User, error) {
	site, err := s.Site()
	if err != nil {
		return User{}, err
	}
	u, ok := site.User(name)
	if !ok {
		s.dummyOnce.Do(func() {
			s.dummyHash, _ = HashPassword("not a password", s.opts.Argon2, s.opts.Rand)
		})
		VerifyPassword(s.dummyHash, password)
		return User{}, ErrBadCredentials
	}
	if !VerifyPassword(u.PasswordHash, password) {
		return User{}, ErrBadCredentials
	}
	return u, nil
}

// VerifyToken returns the API token whose hash matches token.
func (s *Store) VerifyToken(token string) (Token, error) {
	site, err := s.Site()
	if err != nil {
		return Token{}, err
	}
	h := []byte(TokenHash(token))
	for _, t := range site.Tokens {
		if subtle.ConstantTimeCompare(h, []byte(t.Hash)) == 1 {
			return t, nil
		}
	}
	return Token{}, ErrBadCredentials
}

// EnsureAdmin creates the first-run user FirstAdmin with a random password
// (returned once, to print) when no user exists; it is marked to change the
// password at first login. created is false when users already exist.
func (s *Store) EnsureAdmin(actor string) (password string, created bool, err error) {
	ch, err := s.Apply(actor, bootstrapAdmin{})
	if errors.Is(err, ErrExists) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return ch.Secret, true, nil
}

// Check verifies the database: bbolt's page consistency, the schema version,
// and that the stored site loads and validates. Tests run it in cleanup.
func (s *Store) Check() error {
	return s.view(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() { // drain: the checker goroutine sends until done
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("check configuration: %w", errors.Join(errs...))
		}
		v, err := schemaOf(tx)
		if err != nil {
			return fmt.Errorf("check configuration: %w", err)
		}
		if v != SchemaVersion {
			return fmt.Errorf("check configuration: schema %d, want %d", v, SchemaVersion)
		}
		site, err := loadSite(tx)
		if err != nil {
			return fmt.Errorf("check configuration: %w", err)
		}
		if err := Validate(&site); err != nil {
			return fmt.Errorf("check configuration: %w", err)
		}
		return nil
	})
}
