"""A small one-stage detector and a keypoint head, written for lesson 14.

One topic per submodule, all re-exported here: boxes and IoU (``boxes``), non-maximum suppression
(``nms``), the grid detector with its decoding (``head``), its loss (``loss``), COCO evaluation with
pycocotools (``coco``), coordinate-classification keypoints (``keypoints``), the tutorial article's
single-box class and its repair (``article``), and the training loops shared by the lesson and
``benchmarks/detection_ablation.py`` (``training``).
"""

from course_lib.detection.article import AttentionObjectDetection, RepairedAttentionDetection
from course_lib.detection.boxes import box_area, box_iou, cxcywh_to_xyxy, xyxy_to_cxcywh
from course_lib.detection.coco import (
    average_precision,
    coco_detection_map,
    coco_keypoint_ap,
    detections_to_coco,
    object_keypoint_similarity,
)
from course_lib.detection.head import NECK_MODULES, GridDetector, decode_boxes, decode_predictions, encode_targets
from course_lib.detection.keypoints import SimCCPose, simcc_decode, simcc_loss, simcc_targets
from course_lib.detection.loss import yolo_loss
from course_lib.detection.nms import batched_nms, nms, nms_reference
from course_lib.detection.training import detect, predict_keypoints, train_detector, train_pose

__all__ = [
    "box_area",
    "box_iou",
    "cxcywh_to_xyxy",
    "xyxy_to_cxcywh",
    "nms",
    "nms_reference",
    "batched_nms",
    "NECK_MODULES",
    "GridDetector",
    "encode_targets",
    "decode_boxes",
    "decode_predictions",
    "yolo_loss",
    "average_precision",
    "coco_detection_map",
    "coco_keypoint_ap",
    "detections_to_coco",
    "object_keypoint_similarity",
    "SimCCPose",
    "simcc_targets",
    "simcc_loss",
    "simcc_decode",
    "AttentionObjectDetection",
    "RepairedAttentionDetection",
    "train_detector",
    "train_pose",
    "detect",
    "predict_keypoints",
]
