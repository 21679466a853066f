"""The staff console's pages, one module per area. Views stay thin: they check access, read a form
and call billing's (or alerts') domain functions, which write the audit log."""
