// Package isolation converges what keeps tenants apart on a host: their
// cgroup limits (Cgroups, the Tenant's "Limits" part, through a
// cgroup.Driver) and their project disk quota (Quota, the "DiskQuota"
// part). Both are controllers.Steps of the Tenant controller, after its
// account: a limit written by hand is drift like any other, reported and
// corrected under the tenant's drift policy.
//
// Each reports into the tenant's status.resources what the host enforces
// and what not (a hybrid cgroup host, a file system without project
// quota: never a limit shown as enforced when it is not), what the tenant
// uses, and its pressure (PSI). Pressure watches each tenant's pressure
// files with PSI triggers and records a Warning event when the tenant
// stalls (Pressure).
package isolation
