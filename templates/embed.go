// Package templates embeds the configuration templates WCP360 renders onto
// the host: templates/nginx for the nginx config engine, templates/php-fpm
// for the per-tenant PHP-FPM masters. Golden-file tests live with the
// packages that render them.
package templates

import "embed"

// FS holds every template, by path: "nginx/site.conf.tmpl", ...
//
//go:embed nginx php-fpm
var FS embed.FS
