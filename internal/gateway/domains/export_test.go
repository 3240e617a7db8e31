package domains_test

import "github.com/bulkhead-dev/bulkhead/internal/tenants"

func tenantsTenant() tenants.Tenant { return tenants.Tenant{} }
