"""One router per resource of the review app (pages, forms and the JSON API); role gates are
dependencies (:func:`pipeline.app.deps.gate`), ``create_app`` only assembles them."""
