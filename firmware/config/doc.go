// Package config is the appliance's configuration store: one bbolt file on
// the persistent configuration volume holding the cameras, storage, network,
// time, users, API tokens and the appliance pair's settings (Cluster: this
// node's ID, the three voters, heartbeat paths, VIP, mirror address; the
// pair's keys live beside the database, not in it), with a
// versioned schema, validation, an audit log, change notifications and a
// checksummed export/import for cloning a site onto a replacement box.
//
// # Changes
//
// Every change is a typed Mutation (AddCamera, SetNetwork, CreateToken, ...)
// passed to Store.Apply. Apply runs it in one bbolt read-write transaction:
// load the whole site, apply the mutation to a copy, Validate the whole
// result, write back the keys that changed and append the audit entry. All
// of it commits or none of it does, including across a crash or power cut
// (bbolt syncs the file on commit). After the commit, subscribers
// (Store.Subscribe) get a Change with the site before and after and its
// Effect: Live (the running system applies it now: cameras, retention,
// network, time, users, tokens) or Restart (storage paths and commit
// interval, cluster, a whole imported site).
//
// # Secrets
//
// Camera passwords are kept in clear (the appliance must present them) as a
// Secret, which prints and marshals masked. Users' passwords are argon2id
// hashes in PHC form with a per-user 16-byte salt (HashPassword documents
// the parameters); API tokens are stored as their SHA-256 only and shown
// once, in Change.Secret. Audit entries describe mutations with secrets
// masked.
//
// # Schema
//
// The meta bucket records the schema version; Open runs every pending
// migration (a numbered list in schema.go) in the same transaction, so a
// crash mid-migration leaves the old version intact. A database from a newer
// firmware is refused with ErrSchemaTooNew.
//
// # Concurrency
//
// A Store is safe for concurrent use. Apply calls are serialized; reads run
// in parallel with them and see committed states only. Subscribers are called
// synchronously, in commit order, from the goroutine that called Apply; they
// must not call Apply themselves. The package starts no goroutines.
package config
