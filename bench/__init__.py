"""The benchmark (`make bench`): a bulk seeder, a runner that drives the site under gunicorn with wrk,
and in-process measures of the periodic jobs. See docs/deploy.md, section Benchmark."""
