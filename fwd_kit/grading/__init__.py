"""The student's side of grading: the sandboxed process that runs a submission's code (:mod:`.child`) and
the plain-data format of what crosses to and from it (:mod:`.wire`). No checks and no answers live here."""
