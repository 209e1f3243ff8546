"""Photo views: register each photo survey's photos into its site's views, track cracks per view.

Facility managers inspect with photo sets, not orthomosaics; photos of two inspections
share no coordinate frame. A *view* (:class:`~geodata.store.models.PhotoView`) is one place
that is photographed again and again (a wall, a pier face, a joint; for nadir drone photos
a patch of ground). Its frame is the pixel grid of its *reference photo*, the first photo
that showed it.

Registration (:func:`register_survey_photos`, in the pipeline's store transaction). Each
photo of a survey, in file-name order, is

* **refused** when it is unreadable, black (lens cap) or blurred
  (:func:`geodata.registration.photo_quality`): its cracks (none for a black frame) are
  stored but not tracked, and ``reason`` says why;
* the **reference** of a view when it already is one (a re-run), or when it matches no view
  of the site (every candidate refused, each with its figures in ``candidates``): it starts a
  new view; a photo with too few keypoints to ever be matched is refused instead;
* **registered** into the one view that matches (:func:`geodata.registration.register_pair`:
  SIFT, ratio test, MAGSAC++ homography, accepted on inliers and RMS error). Views made by
  photos of the same survey are no candidates (two photos of one inspection are two places
  unless an earlier view links them);
* when two or more views match: registered into the one with the most inliers when it has
  at least :data:`DOMINANCE` times the inliers of each other, or when each other view is a
  *neighbour*: the two views register to each other, overlap by less than half, and map the
  photo's inliers to the same place (within :data:`CONSISTENCY_PX`) -- a photo between two
  overlapping views of one scene, as in a drone flight -- or the two views share no ground
  and the photo's inliers for them lie in different parts of the photo (it spans both).
  Otherwise it is **refused** as ambiguous (look-alike surfaces: two identical panels, or
  two views of the same place), never forced into one;
* each view takes at most one photo of a survey (most inliers first); a photo whose best
  view is taken goes to its next matching view that is a neighbour of the best (above),
  else it is a **duplicate**: stored, not tracked.

GSD of a photo (metres per photo pixel), first that applies: a view scale set by the user
(``crackwatch view set-scale``) carried through the homography; the survey's ``--gsd-m``;
the view scale taken from its reference photo, through the homography; the photo's own
EXIF/XMP GSD (:func:`geodata.photos.ground_sample_distance_m`). Through the homography
``H`` (photo px -> view px) the GSD at a photo point ``p`` is ``view_scale * sqrt(|det
J_H(p)|)``, so each crack is measured with the GSD at its own position
(:meth:`PhotoPlacement.gsd_at`). A photo with none of these is still registered, but its
cracks cannot be measured in mm and are not stored (``reason`` says what to give).

Nadir drone photos with GPS get a ground footprint (:func:`geodata.photos.nadir_footprint`)
and a photo px -> site CRS homography, so their cracks can be drawn on the map, marked
approximate with the assumed GPS error ``position_error_m`` (:data:`DEFAULT_GPS_ERROR_M`).

Tracking (:func:`track_views`, called by :func:`geodata.tracking.track_survey` in its
transaction). Per view, the surveys with a photo in it are taken in tracking order
(``acquired_at``, then id). Each photo's image-space cracks are warped into the view's frame
by its homography and matched with :func:`geodata.matching.match_cracks` against the last
crack of each active track of the view that lies inside the photo's coverage (a track
outside the part of the view the photo shows is not "vanished": it was not looked at). A
crack the matcher calls *new* that lies within the tolerance of a crack of the same photo
belonging to a track is a piece of that crack (the segmentation left a gap where it grew
past its old tip): it is recorded as a split of that track, so a grown crack keeps one
lineage. The
tolerance, in view pixels, is ``tolerance_px`` photo pixels (at the coarser of the two
photos' scales into the view) plus both photos' registration RMS errors -- the photo
counterpart of ``registration_error_m``. Lengths, widths and areas stay those measured on
each photo (m, mm, m^2). Tracks, observations and survey summaries are the same records as
for orthomosaics (``crack_track`` with a ``photo_view_track`` row naming the view), so the
defect history, BRE Digest 251 categories and alert rules work on them unchanged.
Re-tracking from a survey recomputes every view from that survey on; tracks first seen
earlier keep their ids.

Modules: :mod:`.common` (records, constants, cached photo features), :mod:`.footprints`
(nadir photos on the map), :mod:`.scale` (GSD, view scale), :mod:`.candidates` (matching a
photo against the views), :mod:`.register` (registration and its rows), :mod:`.tracking`
(per-view tracking), :mod:`.reads` (the CLI's and the dashboard's reads).
"""

from geodata.views.common import (
    CONSISTENCY_PX,
    DEFAULT_GPS_ERROR_M,
    DOMINANCE,
    PhotoPlacement,
    SurveyPhoto,
    cached_features,
    photo_path,
    view_track_ids,
)
from geodata.views.footprints import footprint_to_image_to_map
from geodata.views.reads import (
    photo_in_view,
    site_views,
    survey_photo_cracks_on_map,
    survey_registrations,
    view_history,
    view_track_polygons,
)
from geodata.views.register import register_survey_photos
from geodata.views.scale import set_view_scale
from geodata.views.tracking import track_views

__all__ = [
    "CONSISTENCY_PX",
    "DEFAULT_GPS_ERROR_M",
    "DOMINANCE",
    "PhotoPlacement",
    "SurveyPhoto",
    "cached_features",
    "footprint_to_image_to_map",
    "photo_in_view",
    "photo_path",
    "register_survey_photos",
    "set_view_scale",
    "site_views",
    "survey_photo_cracks_on_map",
    "survey_registrations",
    "track_views",
    "view_history",
    "view_track_ids",
    "view_track_polygons",
]
