"""Coach mode: what a trainee did in one recording, measured from the rescuer's skeleton, and the
report that shows it beside the classifier's verdict (cprcoach assess --report)."""
