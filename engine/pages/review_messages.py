"""The unit's side in Vietnamese and English, merged into `engine.pages.i18n.CATALOG`.

Owns the words of the version differences (`diff_`), the unit's review queue and confirmation
(`review_`) and the keying of paper forms (`keying_`), on the candidate pages and the console.
Field labels of the differences are the form's own keys (`full_name`, `residence.address`…); the
`diff_field.` keys below only name what the form pages never label on their own. Pure: no IO.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

# key → (Vietnamese, English). `{name}` placeholders are filled by `translate(key, name=...)`.
REVIEW_CATALOG: Final[Mapping[str, tuple[str, str]]] = {
    # differences between versions
    "diff_title": ("Thay đổi so với phiên bản trước", "Changes from the previous version"),
    "diff_first": ("Phiên bản đầu tiên", "First version"),
    "diff_none": ("Không có thay đổi", "No change"),
    "diff_changes": ("Thay đổi", "Changes"),
    "diff_field": ("Thông tin", "Field"),
    "diff_before": ("Trước", "Before"),
    "diff_after": ("Sau", "After"),
    "diff_empty": ("(trống)", "(empty)"),
    "diff_row": ("dòng {n}", "row {n}"),
    "diff_field.schools": ("Nơi học THPT", "Upper-secondary schools"),
    "diff_field.grade": ("Lớp", "Grade"),
    "diff_field.province_code": ("Tỉnh/thành phố", "Province"),
    "diff_field.school_code": ("Mã trường", "School code"),
    "diff_field.residence": ("Nơi thường trú", "Permanent residence"),
    "diff_field.exemptions": ("Miễn thi", "Exemptions"),
    # the candidate's view of the unit's review
    "review_state_title": ("Xác nhận của đơn vị đăng ký", "Confirmation by your registration unit"),
    "review_step_queued": ("Đã tiếp nhận", "Accepted"),
    "review_step_persisted": ("Đã lưu", "Stored"),
    "review_step_confirmed": ("Đơn vị đã xác nhận", "Confirmed by the unit"),
    "review_candidate_confirmed": (
        "Đơn vị đăng ký đã xác nhận phiên bản {version} của phiếu lúc {at}.",
        "Your registration unit confirmed version {version} of your form at {at}.",
    ),
    "review_candidate_changed": (
        "Bạn đã sửa phiếu sau khi đơn vị xác nhận phiên bản {version}: đơn vị sẽ xem lại.",
        "You edited the form after the unit confirmed version {version}: the unit will review "
        "it again.",
    ),
    "review_candidate_returned": (
        "Đơn vị đăng ký đề nghị sửa phiếu (phiên bản {version}). Lý do: {reason}",
        "Your registration unit asks you to correct your form (version {version}). Reason: "
        "{reason}",
    ),
    "review_candidate_pending": (
        "Đơn vị đăng ký chưa xem phiếu này.",
        "Your registration unit has not reviewed this form yet.",
    ),
    # the unit's queue
    "review_nav": ("Duyệt hồ sơ của đơn vị", "Unit review"),
    "review_title": ("Hồ sơ của đơn vị {school}", "Registrations of unit {school}"),
    "review_intro": (
        "Thí sinh của đơn vị theo trạng thái. Xác nhận ghi lại người xác nhận, thời điểm và phiên "
        "bản; nếu thí sinh sửa phiếu sau đó, hồ sơ chuyển về “đã sửa sau xác nhận”. Mọi thao tác "
        "được ghi nhật ký.",
        "The unit's candidates by state. Confirming records who, when and which version; if the "
        "candidate edits the form afterwards, it moves back to “changed since confirmed”. Every "
        "action is audited.",
    ),
    "review_only_school": (
        "Chỉ tài khoản trường (đơn vị đăng ký) dùng được trang này.",
        "Only a school (registration unit) account can use this page.",
    ),
    "review_group_not_registered": ("Chưa đăng ký", "Not yet registered"),
    "review_group_unreviewed": ("Đã đăng ký, chưa duyệt", "Registered, not reviewed"),
    "review_group_changed": ("Đã sửa sau khi xác nhận", "Changed since confirmed"),
    "review_group_confirmed": ("Đã xác nhận", "Confirmed"),
    "review_group_returned": ("Đã trả lại để sửa", "Returned for correction"),
    "review_group_empty": ("Không có thí sinh nào.", "No candidate."),
    "review_col_name": ("Họ và tên", "Full name"),
    "review_col_version": ("Phiên bản", "Version"),
    "review_col_reviewed": ("Lần duyệt gần nhất", "Last review"),
    "review_col_action": ("Thao tác", "Action"),
    "review_by": ("{who}, {at}, phiên bản {version}", "{who}, {at}, version {version}"),
    "review_decided": ("{at}, phiên bản {version}", "{at}, version {version}"),
    "review_reason": ("Lý do trả lại", "Reason for returning"),
    "review_reason_hint": (
        "3–500 ký tự; thí sinh đọc được lý do này trên trang trạng thái.",
        "3–500 characters; the candidate reads it on their status page.",
    ),
    "review_confirm": ("Xác nhận phiên bản {version}", "Confirm version {version}"),
    "review_return": ("Trả lại để sửa", "Return for correction"),
    "review_since": (
        "Thay đổi từ phiên bản đã xác nhận {version}",
        "Changes since the confirmed version {version}",
    ),
    "review_done_confirm": (
        "Đã xác nhận phiên bản {version} của thí sinh {id}.",
        "Version {version} of candidate {id} confirmed.",
    ),
    "review_done_return": (
        "Đã trả lại phiếu của thí sinh {id} để sửa.",
        "The form of candidate {id} was returned for correction.",
    ),
    "review_stale": (
        "Thí sinh vừa gửi phiên bản mới ({version}); hãy xem lại trước khi xác nhận.",
        "The candidate just submitted a new version ({version}); review it before confirming.",
    ),
    "review_print": ("In phiếu của đơn vị", "Print the unit's forms"),
    "review_print_title": (
        "Phiếu đăng ký dự thi — đơn vị {school}",
        "Registration forms — unit {school}",
    ),
    "review_print_none": ("Chưa có phiếu nào để in.", "No form to print yet."),
    "review_print_button": ("In", "Print"),
    "review_signature_unit": (
        "Xác nhận của đơn vị (ký, đóng dấu)",
        "Unit's confirmation (signature, stamp)",
    ),
    "review_signature_candidate": ("Chữ ký của thí sinh", "Candidate's signature"),
    "review_state_label": ("Trạng thái duyệt", "Review state"),
    # keying paper forms
    "keying_nav": ("Nhập phiếu giấy", "Key paper forms"),
    "keying_title": ("Nhập phiếu đăng ký giấy", "Key paper registration forms"),
    "keying_intro": (
        "Phiếu giấy của thí sinh thuộc đơn vị đi qua đúng kiểm tra, chống ghi trùng và hàng đợi "
        "như phiếu nộp trực tuyến. Nhập lại cùng một phiếu (hoặc tải lại cùng một tệp) không tạo "
        "phiên bản mới.",
        "A paper form of one of the unit's candidates goes through the very checks, duplicate "
        "protection and queue of an online submission. Keying the same form again (or uploading "
        "the same file again) creates no new version.",
    ),
    "keying_one": ("Nhập một phiếu", "Key one form"),
    "keying_one_hint": (
        "Một dòng của tệp mẫu: tên cột = giá trị, mỗi dòng một cột.",
        "One row of the template: column = value, one column per line.",
    ),
    "keying_fields": ("Nội dung phiếu", "Form content"),
    "keying_submit_one": ("Gửi phiếu", "Submit the form"),
    "keying_file": ("Tải lên nhiều phiếu (CSV hoặc XLSX)", "Upload many forms (CSV or XLSX)"),
    "keying_file_hint": (
        "Dòng đầu là tên cột như tệp mẫu; tối đa {rows} dòng, {mb} MB.",
        "The first row names the columns as in the template; at most {rows} rows, {mb} MB.",
    ),
    "keying_template": ("Tải tệp mẫu (CSV)", "Download the template (CSV)"),
    "keying_good_only": (
        "Nếu có dòng lỗi, vẫn gửi các dòng đúng",
        "If some rows are wrong, still submit the good rows",
    ),
    "keying_upload": ("Tải lên và kiểm tra", "Upload and check"),
    "keying_job": ("Tệp {name}", "File {name}"),
    "keying_state_validating": ("Đang kiểm tra", "Checking"),
    "keying_state_enqueuing": ("Đang gửi", "Submitting"),
    "keying_state_done": ("Xong", "Done"),
    "keying_state_refused": (
        "Không gửi dòng nào: tệp có lỗi",
        "Nothing submitted: the file has errors",
    ),
    "keying_state_failed": ("Bị gián đoạn", "Interrupted"),
    "keying_progress": ("{done} / {total} dòng", "{done} / {total} rows"),
    "keying_counts": (
        "Đã gửi {enqueued} phiếu mới, {replayed} phiếu đã có (không tạo phiên bản mới), "
        "{bad} dòng lỗi.",
        "{enqueued} new forms submitted, {replayed} already recorded (no new version), "
        "{bad} bad rows.",
    ),
    "keying_errors": ("Các dòng lỗi", "Rows with errors"),
    "keying_line": ("Dòng", "Line"),
    "keying_accepted": (
        "Đã tiếp nhận phiếu: phiên bản {version}, mã biên nhận {receipt}.",
        "Form accepted: version {version}, receipt {receipt}.",
    ),
    "keying_replayed": (
        "Phiếu này đã được ghi nhận trước đó (phiên bản {version}); không tạo phiên bản mới.",
        "This form was already recorded (version {version}); no new version.",
    ),
    "keying_refresh": ("Cập nhật", "Refresh"),
}
