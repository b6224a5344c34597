// Package appliance is the long-lived program the image starts (`nvrd run`):
// it loads the configuration, opens the store, and owns the lifecycle of every
// component (camera recording, console, API, watchdog, board monitor) through
// a Supervisor, so that one failing component is logged and restarted with
// backoff and never takes recording of the others down. On shutdown it stops
// components, makes the last commit durable and closes the store.
//
// Concurrency: the Supervisor runs each component in its own goroutine bound
// to the Run context; all goroutines are joined before Run returns.
package appliance
