// Package importrules holds the tests that keep Slate's package map honest: which binary links
// what (the agent, PID 1 of the deploy environment, links no server code; the appliance does
// not link the lab) and which packages may not import which. docs/architecture.md lists the
// rules; the tests here enforce them with `go list`.
package importrules
