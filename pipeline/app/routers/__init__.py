"""One router per resource of the review app (pages and forms); role gates are
dependencies (:func:`pipeline.app.main.gate`), ``create_app`` only assembles them."""
