package testbed

import "strings"

// OrderStatuses returns the status of each order the account at
// accountURL placed ("valid", "invalid", "pending"…), oldest first. Tests
// running side by side each see only their own account's orders, which
// Orders (a count across the CA) cannot give them.
func (a *ACME) OrderStatuses(accountURL string) []string {
	id := accountURL[strings.LastIndex(accountURL, "/")+1:]
	var out []string
	for _, o := range a.db.GetOrdersByAccountID(id) {
		o.RLock()
		out = append(out, o.Status)
		o.RUnlock()
	}
	return out
}
