"""The support console's words in Vietnamese and English, merged into `engine.i18n.CATALOG`.

Owns every string of `engine.pages.support` and `templates/support/`; keys start with `desk_` so
they cannot collide with the candidate pages'. Split from `engine.i18n` by size. Pure: no IO.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

# key → (Vietnamese, English). `{name}` placeholders are filled by `translate(key, name=...)`.
DESK_CATALOG: Final[Mapping[str, tuple[str, str]]] = {
    # chrome
    "desk_title": ("Bàn hỗ trợ thí sinh", "Candidate support desk"),
    "desk_nav_search": ("Tìm thí sinh", "Find a candidate"),
    "desk_nav_audit": ("Nhật ký thao tác", "Record of actions"),
    # the record of actions (admin)
    "desk_audit_title": ("Nhật ký thao tác", "Record of actions"),
    "desk_audit_intro": (
        "Mọi thao tác của thí sinh (đăng nhập, nộp, sửa phiếu, đổi mật khẩu), cán bộ hỗ trợ, "
        "vận hành và quản trị, mới nhất trước. Không sửa hay xoá được. Mỗi lần xem cũng được ghi "
        "nhật ký.",
        "Every action of candidates (login, submit, edit, password change), desk staff, "
        "operators and admins, newest first. Nothing can be changed or deleted. Every read of "
        "it is recorded too.",
    ),
    "desk_audit_invalid": ("Chưa xem được:", "The record could not be read:"),
    "desk_audit_actor": ("Người thực hiện", "Actor"),
    "desk_audit_actor_hint": (
        "Tên đăng nhập cán bộ, người vận hành, hoặc candidate: và mã thí sinh (candidate:22)",
        "A staff username, an operator, or candidate: and the candidate ID (candidate:22)",
    ),
    "desk_audit_action": ("Thao tác", "Action"),
    "desk_audit_action_hint": (
        "Ví dụ: login, submit, edit, search, reconcile",
        "For example: login, submit, edit, search, reconcile",
    ),
    "desk_audit_since": ("Từ thời điểm", "From"),
    "desk_audit_until": ("Đến trước thời điểm", "Until (before)"),
    "desk_audit_time_hint": ("Giờ Việt Nam (GMT+7)", "Vietnam time (GMT+7)"),
    "desk_audit_reason_hint": (
        "Không bắt buộc: lý do xem nhật ký (số phiếu), được ghi lại.",
        "Optional: why you read the record (a ticket); it is recorded.",
    ),
    "desk_audit_button": ("Xem nhật ký", "Show the record"),
    "desk_audit_none": ("Không có thao tác nào khớp.", "No action matches."),
    "desk_audit_col_at": ("Thời điểm", "When"),
    "desk_audit_col_role": ("Vai trò", "Role"),
    "desk_audit_col_address": ("Địa chỉ", "Address"),
    "desk_audit_col_detail": ("Nội dung thay đổi", "What changed"),
    "desk_role_support": ("hỗ trợ", "support"),
    "desk_role_school": ("trường {school}", "school {school}"),
    "desk_role_operator": ("vận hành", "operator"),
    "desk_role_admin": ("quản trị", "admin"),
    "desk_yes": ("Có", "Yes"),
    "desk_no": ("Không", "No"),
    # the calendar page (issue 14)
    "desk_nav_window": ("Lịch đăng ký", "Registration calendar"),
    "desk_window_title": ("Lịch đăng ký dự thi và mở lại", "Registration calendar and reopens"),
    "desk_window_national": ("Toàn quốc", "National"),
    "desk_window_phase": ("Trạng thái", "Phase"),
    "desk_phase_before": ("Chưa mở", "Not open yet"),
    "desk_phase_trial": ("Đăng ký thử", "Trial"),
    "desk_phase_official": ("Đang mở", "Open"),
    "desk_phase_closed": ("Đã khóa", "Locked"),
    "desk_window_official": ("Đợt chính thức", "Official window"),
    "desk_window_trial": ("Đợt thử", "Trial window"),
    "desk_window_lock": ("Khóa chức năng ĐKDT", "Registration lock"),
    "desk_window_no_lock": ("chưa đặt", "not set"),
    "desk_window_scope": ("Phạm vi", "Scope"),
    "desk_window_kind": ("Đợt", "Window"),
    "desk_window_opens": ("Mở", "Opens"),
    "desk_window_closes": ("Đóng", "Closes"),
    "desk_window_by": ("Người đặt", "Set by"),
    "desk_window_cache": (
        "Mọi máy chủ API áp dụng thay đổi trong vòng {seconds} giây.",
        "Every API process applies a change within {seconds} seconds.",
    ),
    "desk_window_done_created": ("Đã mở lại (số {id}).", "Reopened (number {id})."),
    "desk_window_done_closed": ("Đã đóng đợt mở lại số {id}.", "Reopen number {id} closed."),
    "desk_reopen_title": ("Mở lại đăng ký", "Reopen registration"),
    "desk_reopen_intro": (
        "Cho các đơn vị, tỉnh hoặc thí sinh được nêu tiếp tục đăng ký đến thời điểm đã chọn "
        "(giờ Việt Nam), kể cả sau khi khóa toàn quốc. Mọi lần mở lại đều được ghi nhật ký.",
        "Lets the named units, provinces or candidates register until the chosen time "
        "(Vietnam time), past the national lock too. Every reopen is written to the audit log.",
    ),
    "desk_reopen_units": ("Đơn vị (trường)", "Units (schools)"),
    "desk_reopen_units_hint": (
        "Mã tỉnh-mã trường, vd. 01-001 02-015",
        "PP-SSS, e.g. 01-001 02-015",
    ),
    "desk_reopen_provinces": ("Tỉnh", "Provinces"),
    "desk_reopen_provinces_hint": ("Mã tỉnh, vd. 01 46", "Province codes, e.g. 01 46"),
    "desk_reopen_candidates": ("Thí sinh", "Candidates"),
    "desk_reopen_candidates_hint": ("Mã thí sinh (số)", "Candidate IDs (numbers)"),
    "desk_reopen_until": ("Đến", "Until"),
    "desk_reopen_until_hint": ("Giờ Việt Nam (GMT+7)", "Vietnam time (GMT+7)"),
    "desk_reopen_button": ("Mở lại", "Reopen"),
    "desk_reopens_title": ("Các đợt mở lại", "Reopens"),
    "desk_reopens_none": ("Chưa có đợt mở lại nào.", "No reopens yet."),
    "desk_reopen_targets": ("Áp dụng cho", "For"),
    "desk_reopen_state": ("Trạng thái", "State"),
    "desk_reopen_state_open": ("Đang mở", "Open"),
    "desk_reopen_state_closed": ("Đã đóng sớm", "Closed early"),
    "desk_reopen_state_ended": ("Đã hết hạn", "Ended"),
    "desk_reopen_close": ("Đóng sớm", "Close early"),
    "desk_reopen_close_button": ("Đóng đợt mở lại", "Close this reopen"),
    # login and password
    "desk_login_title": ("Đăng nhập bàn hỗ trợ", "Support desk login"),
    "desk_login_intro": (
        "Dành cho cán bộ hỗ trợ, cán bộ trường, vận hành và quản trị. Mọi lần tra cứu đều "
        "được ghi vào nhật ký kiểm tra.",
        "For support agents, school staff, operators and administrators. Every lookup is "
        "written to the audit log.",
    ),
    "desk_username": ("Tên đăng nhập", "Username"),
    "desk_login_failed": (
        "Tên đăng nhập hoặc mật khẩu không đúng.",
        "The username or the password is wrong.",
    ),
    "desk_role_refused": (
        "Tài khoản này không dùng được bàn hỗ trợ (chỉ dành cho vai trò hỗ trợ, trường và "
        "quản trị).",
        "This account cannot use the support desk (support, school and admin roles only).",
    ),
    "desk_password_forced": (
        "Tài khoản mới hoặc vừa được cấp lại mật khẩu: vui lòng đổi mật khẩu trước khi tiếp tục.",
        "A new or reset account: please change the password before you continue.",
    ),
    # search
    "desk_search_title": ("Tìm thí sinh", "Find a candidate"),
    "desk_search_intro": (
        "Tìm theo số định danh, mã thí sinh, họ tên (có dấu hoặc không; thêm ngày sinh để tìm "
        "chính xác) hoặc trường. Mỗi lần tìm được ghi nhật ký; số định danh được che.",
        "Search by national ID, candidate ID, name (accents optional; add the date of birth for "
        "an exact match) or school. Every search is audited; national IDs are masked.",
    ),
    "desk_school_scope": (
        "Tài khoản trường: bạn chỉ thấy thí sinh của trường {school}.",
        "School account: you see the candidates of school {school} only.",
    ),
    "desk_national_id": ("Số định danh cá nhân", "National ID"),
    "desk_national_id_hint": ("12 chữ số", "12 digits"),
    "desk_candidate_id": ("Mã thí sinh (trong hệ thống)", "Candidate ID (system)"),
    "desk_name": ("Họ và tên", "Full name"),
    "desk_name_hint": (
        "Có dấu hoặc không dấu, ví dụ nguyen van an; gõ phần đầu cũng được",
        "With or without accents, e.g. nguyen van an; the beginning is enough",
    ),
    "desk_date_of_birth": ("Ngày sinh", "Date of birth"),
    "desk_date_of_birth_hint": (
        "Cùng họ tên đầy đủ: tìm chính xác",
        "With the full name: an exact match",
    ),
    "desk_province": ("Tỉnh/thành phố của trường", "School's province"),
    "desk_school_code": ("Mã trường", "School code"),
    "desk_school_code_hint": ("3 chữ số, cùng với tỉnh", "3 digits, with the province"),
    "desk_reason": ("Lý do / số phiếu hỗ trợ", "Reason / ticket reference"),
    "desk_reason_hint_search": (
        "Bắt buộc, 3–500 ký tự: được ghi vào nhật ký cùng các thí sinh hiện trong kết quả, và "
        "dùng luôn để mở hồ sơ từ danh sách kết quả.",
        "Required, 3–500 characters: audited with the candidates the results show, and used to "
        "open records straight from the results.",
    ),
    "desk_reason_hint": (
        "3–500 ký tự, ví dụ số phiếu hỗ trợ và nội dung cuộc gọi. Được ghi vào nhật ký.",
        "3–500 characters, e.g. the ticket reference and what the call is about. Audited.",
    ),
    "desk_search_button": ("Tìm", "Search"),
    "desk_invalid": ("Chưa tìm được:", "The search could not run:"),
    "desk_results": ("Kết quả", "Results"),
    "desk_results_page": ("Trang {page}", "Page {page}"),
    "desk_no_results": ("Không tìm thấy thí sinh nào.", "No candidate found."),
    "desk_col_id": ("Mã TS", "ID"),
    "desk_col_registration": ("Phiếu đã lưu", "Stored form"),
    "desk_registration_version": ("Phiên bản {version}", "Version {version}"),
    "desk_registration_none": ("Chưa có", "None"),
    "desk_open": ("Mở hồ sơ", "Open record"),
    "desk_previous": ("Trang trước", "Previous page"),
    "desk_next": ("Trang sau", "Next page"),
    # the reason prompt
    "desk_prompt_detail": ("Mở hồ sơ thí sinh {id}", "Open the record of candidate {id}"),
    "desk_prompt_reveal": (
        "Hiện số định danh và số điện thoại của thí sinh {id}",
        "Reveal the national ID and phone number of candidate {id}",
    ),
    "desk_prompt_reset": (
        "Cấp lại mật khẩu cho thí sinh {id}",
        "Reset the password of candidate {id}",
    ),
    "desk_prompt_intro": (
        "Mỗi lần xem hồ sơ, hiện thông tin hoặc cấp lại mật khẩu đều được ghi vào nhật ký kiểm tra "
        "cùng lý do bạn nhập.",
        "Every record view, reveal and password reset is written to the audit log with the "
        "reason you give.",
    ),
    "desk_open_button": ("Mở hồ sơ", "Open record"),
    "desk_reveal_button": ("Hiện thông tin", "Reveal"),
    "desk_reset_button": ("Cấp mật khẩu mới", "Issue a new password"),
    # the record
    "desk_viewed_for": ("Lý do (đã ghi nhật ký): {reason}", "Reason (audited): {reason}"),
    "desk_revealed_notice": (
        "Số định danh và số điện thoại đang hiện đầy đủ. Lần xem này đã được ghi nhật ký.",
        "The national ID and phone number are shown in full. This view has been audited.",
    ),
    "desk_pipeline": ("Phiếu mới nhất đang ở đâu?", "Where is the newest submission?"),
    "desk_state_in_stream": (
        "Đã tiếp nhận, đang chờ ghi vào cơ sở dữ liệu",
        "Accepted, waiting to be written to the database",
    ),
    "desk_state_in_stream_note": (
        "Phiếu đã được tiếp nhận an toàn và đã được tính; hệ thống sẽ tự ghi vào cơ sở dữ liệu.",
        "The submission is safely accepted and counts; it will be written to the database.",
    ),
    "desk_state_persisted": ("Đã lưu vào cơ sở dữ liệu", "Stored in the database"),
    "desk_state_persisted_note": ("Phiếu đã được ghi nhận.", "The submission is recorded."),
    "desk_state_dead_lettered": (
        "Không ghi được vào cơ sở dữ liệu",
        "Could not be written to the database",
    ),
    "desk_state_dead_lettered_note": (
        "Phiếu đã được tiếp nhận nhưng cơ sở dữ liệu từ chối. Chuyển bộ phận kỹ thuật kèm mã "
        "biên nhận.",
        "Accepted, but the database refused it. Hand it to the technical team with the receipt ID.",
    ),
    "desk_dead_letter": (
        "Mã mục lỗi (gửi bộ phận kỹ thuật)",
        "Dead-letter ID (for the technical team)",
    ),
    "desk_state_none": ("Chưa nộp phiếu", "Nothing submitted"),
    "desk_state_none_note": (
        "Thí sinh chưa gửi phiếu đăng ký nào.",
        "The candidate has not submitted a registration.",
    ),
    "desk_shard": ("Phân vùng hàng đợi", "Stream shard"),
    "desk_delivery": ("Trong hàng đợi", "In the stream"),
    "desk_delivery_waiting": ("Đang chờ bộ ghi", "Waiting for a writer"),
    "desk_delivery_pending": (
        "Bộ ghi {consumer} đang xử lý (lần giao {deliveries}, {idle} giây)",
        "Writer {consumer} has it (delivery {deliveries}, {idle} s)",
    ),
    "desk_age": ("Đã chờ", "Waiting for"),
    "desk_stream_id": ("Mã trong hàng đợi", "Stream entry"),
    "desk_dead_reason": ("Lỗi", "Failure"),
    "desk_refresh": ("Cập nhật trạng thái", "Refresh"),
    "desk_roster": ("Thông tin trong danh sách dự thi", "Roster data"),
    "desk_must_change": ("Phải đổi mật khẩu khi đăng nhập", "Must change the password at login"),
    "desk_reveal_summary": (
        "Hiện số định danh và số điện thoại…",
        "Reveal the national ID and phone…",
    ),
    "desk_reset_summary": ("Cấp lại mật khẩu…", "Reset the password…"),
    "desk_reset_warning": (
        "Thí sinh nhận một mật khẩu dùng một lần và phải đổi khi đăng nhập; mọi phiên đăng nhập "
        "hiện tại của thí sinh bị đóng.",
        "The candidate gets a one-time password to change at the next login; all their current "
        "sessions end.",
    ),
    "desk_current": ("Phiếu hiện tại (đã lưu)", "Current registration (stored)"),
    "desk_current_none": ("Chưa có phiếu nào được lưu.", "No registration stored yet."),
    "desk_versions": ("Tất cả các phiên bản", "Every version"),
    "desk_versions_none": ("Chưa có phiên bản nào được lưu.", "No version stored yet."),
    "desk_request": ("Mã yêu cầu", "Request key"),
    # the one-time password
    "desk_reset_title": ("Đã cấp mật khẩu mới", "New password issued"),
    "desk_one_time_password": ("Mật khẩu dùng một lần", "One-time password"),
    "desk_reset_once": (
        "Chỉ hiện MỘT lần. Đọc cho thí sinh ngay; thí sinh phải đổi mật khẩu khi đăng nhập.",
        "Shown ONCE. Read it to the candidate now; they must change it at the next login.",
    ),
    "desk_sessions_revoked": (
        "Đã đóng {count} phiên đăng nhập của thí sinh.",
        "{count} of the candidate's sessions were ended.",
    ),
    "desk_reset_gone_title": ("Mật khẩu đã được hiển thị", "The password was already shown"),
    "desk_reset_gone": (
        "Mật khẩu dùng một lần chỉ hiện một lần và không còn xem lại được; không có mật khẩu "
        "mới nào được cấp thêm. Nếu chưa kịp đọc cho thí sinh, hãy mở hồ sơ và cấp lại.",
        "A one-time password is shown once and cannot be viewed again; no further password was "
        "issued. If it did not reach the candidate, open the record and reset it again.",
    ),
    "desk_copy": ("Sao chép", "Copy"),
    "desk_copied": ("Đã sao chép", "Copied"),
    "desk_back_record": ("Mở lại hồ sơ", "Open the record again"),
    "desk_back_search": ("Tìm thí sinh khác", "Find another candidate"),
    # errors
    "desk_not_found": (
        "Không tìm thấy thí sinh này, hoặc thí sinh không thuộc phạm vi tài khoản của bạn.",
        "No such candidate, or not one your account may see.",
    ),
}
