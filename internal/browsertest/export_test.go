package browsertest

// Home returns the directory that holds Chromium's XDG_CONFIG_HOME: its
// crash handler's command line names it.
func (b *Browser) Home() string { return b.home }

// ProcessesUsing is processesUsing, for the tests.
var ProcessesUsing = processesUsing
