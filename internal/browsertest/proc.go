package browsertest

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// endProcessesUsing waits up to limit for the processes that have dir in
// their command line to end, then kills those left and returns how many it
// killed. Without /proc (not Linux) it finds none.
func endProcessesUsing(dir string, limit time.Duration) int {
	deadline := time.Now().Add(limit)
	for {
		pids := processesUsing(dir)
		if len(pids) == 0 {
			return 0
		}
		if time.Now().After(deadline) {
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			return len(pids)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processesUsing returns the running processes (not zombies) that have s in
// an argument of their command line: a test finds with it what is left of a
// Browser, by its profile's directory.
func processesUsing(s string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		// A zombie's command line reads empty.
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !strings.Contains(string(cmdline), s) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}
