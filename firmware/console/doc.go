// Package console is the appliance's line-oriented operator console.
package console
