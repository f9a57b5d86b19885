"""The web pages' words in Vietnamese and English: a small catalog, Vietnamese first.

Owns every user-facing string of `engine.pages.candidate` and its templates (the support console's
live in `engine.pages.support_messages` and are merged here), and the choice of language (`?lang=`
then the `lang` cookie, else Vietnamese). Field error messages are not here: they come from the
validator (`FieldError.message` / `message_en`) and the errors' own titles. Pure: no IO."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, Literal

from markupsafe import Markup

from engine.pages.review_messages import REVIEW_CATALOG
from engine.pages.support_messages import DESK_CATALOG

Lang = Literal["vi", "en"]
LANGS: Final = ("vi", "en")
COOKIE: Final = "lang"

# key → (Vietnamese, English). `{name}` placeholders are filled by `translate(key, name=...)`.
_CANDIDATE_CATALOG: Final[Mapping[str, tuple[str, str]]] = {
    # chrome
    "site_title": ("Đăng ký dự thi tốt nghiệp THPT", "High-school graduation exam registration"),
    "switch_language": ("English", "Tiếng Việt"),
    "logout": ("Đăng xuất", "Log out"),
    "nav_status": ("Trạng thái hồ sơ", "My registration"),
    "nav_form": ("Phiếu đăng ký", "Registration form"),
    "skip_to_content": ("Bỏ qua đến nội dung", "Skip to content"),
    "required_mark": ("bắt buộc", "required"),
    "optional_mark": ("không bắt buộc", "optional"),
    "field_required": ("Vui lòng nhập thông tin này.", "This field is required."),
    "choose": ("— Chọn —", "— Choose —"),
    "none_option": ("— Không —", "— None —"),
    "errors_summary": (
        "Phiếu có {count} thông tin chưa hợp lệ. Vui lòng sửa các mục được đánh dấu bên dưới.",
        "The form has {count} problem(s). Please correct the marked fields below.",
    ),
    "error_prefix": ("Lỗi:", "Error:"),
    # window banners
    "banner_before": (
        "Chưa đến thời gian đăng ký dự thi. Hệ thống mở lúc {opens}.",
        "Registration has not opened yet. It opens at {opens}.",
    ),
    "banner_before_unknown": (
        "Chưa đến thời gian đăng ký dự thi.",
        "Registration has not opened yet.",
    ),
    "banner_trial": (
        "ĐĂNG KÝ THỬ: đây là đợt thử nghiệm. Mọi dữ liệu nhập trong đợt này sẽ bị xoá "
        "khi đợt thử kết thúc; bạn sẽ phải đăng ký lại trong đợt chính thức.",
        "TRIAL RUN: everything entered now will be discarded when the trial ends; "
        "you will have to register again in the official window.",
    ),
    "banner_official": (
        "Hệ thống đang mở đăng ký. Hạn cuối: {closes}. Bạn có thể sửa phiếu đến hạn cuối.",
        "Registration is open until {closes}. You can edit your form until then.",
    ),
    "banner_reopened": (
        "Đăng ký dự thi được mở lại cho bạn. Hạn cuối mới: {closes}. Bạn có thể sửa phiếu "
        "đến hạn cuối mới này.",
        "Registration has been reopened for you. New deadline: {closes}. You can edit your "
        "form until then.",
    ),
    "banner_official_open": (
        "Hệ thống đang mở đăng ký. Bạn có thể sửa phiếu đến hạn cuối.",
        "Registration is open. You can edit your form until the deadline.",
    ),
    "banner_closed": (
        "Đã hết thời gian đăng ký dự thi. Phiếu chỉ còn xem được, không sửa được nữa. "
        "Nếu cần điều chỉnh, vui lòng liên hệ đơn vị đăng ký dự thi (trường của bạn).",
        "Registration is closed. Your form can be viewed but no longer changed. "
        "For corrections, contact your registration unit (your school).",
    ),
    # login
    "login_title": ("Đăng nhập", "Log in"),
    "login_intro": (
        "Đăng nhập bằng số định danh cá nhân (12 chữ số) và mật khẩu nhà trường cấp.",
        "Log in with your 12-digit personal ID number and the password your school issued.",
    ),
    "login_id": ("Số định danh cá nhân", "Personal ID number"),
    "login_id_hint": ("12 chữ số, ví dụ 001208012345", "12 digits, e.g. 001208012345"),
    "password": ("Mật khẩu", "Password"),
    "login_button": ("Đăng nhập", "Log in"),
    "login_busy": (
        "Hệ thống đang có nhiều người đăng nhập. Vui lòng thử lại sau {seconds} giây.",
        "Many candidates are logging in right now. Please try again in {seconds} seconds.",
    ),
    "login_locked": (
        "Bạn đã thử đăng nhập quá nhiều lần. Vui lòng thử lại sau {seconds} giây.",
        "Too many login attempts. Please try again in {seconds} seconds.",
    ),
    "logged_out": ("Bạn đã đăng xuất.", "You have logged out."),
    "session_expired": (
        "Phiên đăng nhập đã hết hạn. Vui lòng đăng nhập lại.",
        "Your session has expired. Please log in again.",
    ),
    # password
    "password_title": ("Đổi mật khẩu", "Change your password"),
    "password_intro_forced": (
        "Đây là lần đăng nhập đầu tiên. Vui lòng đổi mật khẩu nhà trường cấp trước khi tiếp tục.",
        "This is your first login. Please replace the password your school issued before "
        "you continue.",
    ),
    "password_intro": (
        "Mật khẩu mới cần ít nhất {min} ký tự (một cụm từ dễ nhớ càng tốt), không phải mật khẩu "
        "phổ biến, không chứa số định danh của bạn và khác mật khẩu cũ.",
        "The new password needs at least {min} characters (a memorable phrase is best), must not "
        "be a common password or contain your ID number, and must differ from the old one.",
    ),
    "current_password": ("Mật khẩu hiện tại", "Current password"),
    "new_password": ("Mật khẩu mới", "New password"),
    "new_password_confirm": ("Nhập lại mật khẩu mới", "Repeat the new password"),
    "password_mismatch": (
        "Hai lần nhập mật khẩu mới không giống nhau.",
        "The two new passwords differ.",
    ),
    "password_button": ("Đổi mật khẩu", "Change password"),
    "current_password_wrong": ("Mật khẩu hiện tại không đúng.", "The current password is wrong."),
    # registration form
    "form_title": ("Phiếu đăng ký dự thi", "Exam registration form"),
    "form_intro": (
        "Các mục có dấu * là bắt buộc. Thông tin cá nhân lấy từ danh sách của nhà trường; "
        "hãy kiểm tra lại cho khớp giấy khai sinh.",
        "Fields marked * are required. Personal details come from your school's roster; "
        "check they match your birth certificate.",
    ),
    "section_identity": ("Thông tin cá nhân", "Personal details"),
    "section_residence": ("Nơi thường trú", "Permanent residence"),
    "section_schools": ("Nơi học THPT", "Upper-secondary schools"),
    "section_contact": ("Liên hệ", "Contact"),
    "section_exam": ("Đăng ký dự thi", "Exam choices"),
    "full_name": ("Họ, chữ đệm và tên", "Full name"),
    "full_name_hint": (
        "Viết có dấu, như trong giấy khai sinh",
        "With diacritics, as on your birth certificate",
    ),
    "date_of_birth": ("Ngày sinh", "Date of birth"),
    "sex": ("Giới tính", "Sex"),
    "sex_male": ("Nam", "Male"),
    "sex_female": ("Nữ", "Female"),
    "national_id": ("Số định danh cá nhân / CCCD", "Personal ID / citizen ID number"),
    "national_id_hint": (
        "Số đăng nhập của bạn; không sửa được",
        "Your login number; it cannot be changed",
    ),
    "ethnicity": ("Dân tộc", "Ethnicity"),
    "birthplace": ("Nơi sinh (tỉnh/thành phố)", "Place of birth (province)"),
    "birthplace_hint": (
        "Tên tỉnh/thành phố; nếu sinh ở nước ngoài, ghi tên nước bằng tiếng Việt",
        "A province; if born abroad, the country's name in Vietnamese",
    ),
    "residence.address": ("Địa chỉ thường trú", "Address"),
    "residence.province_code": ("Tỉnh/thành phố thường trú", "Province of residence"),
    "residence.commune_code": (
        "Mã xã (chỉ với xã đặc biệt khó khăn)",
        "Commune code (especially difficult communes only)",
    ),
    "residence.commune_code_hint": (
        "2 chữ số; để trống nếu không thuộc diện này",
        "2 digits; leave empty otherwise",
    ),
    "residence.kv1_over_18_months": (
        "Thường trú trên 18 tháng tại KV1 / xã đặc biệt khó khăn trong thời gian học THPT",
        "Resided over 18 months in KV1 / an especially difficult commune during upper secondary",
    ),
    "schools_intro": (
        "Học sinh lớp 12 khai đủ 3 năm lớp 10, 11, 12. Thí sinh tự do có thể để trống.",
        "Grade-12 students give all three years. Free candidates may leave this empty.",
    ),
    "grade": ("Lớp {grade}", "Grade {grade}"),
    "school_province": ("Tỉnh/thành phố của trường", "School's province"),
    "school": ("Trường", "School"),
    "school_choose_province": ("— Chọn tỉnh trước —", "— Choose the province first —"),
    "reload_schools": (
        "Cập nhật danh sách trường theo tỉnh đã chọn",
        "Update the school lists for the chosen provinces",
    ),
    "phone": ("Số điện thoại di động", "Mobile phone number"),
    "phone_hint": ("Ví dụ 0912345678", "e.g. 0912345678"),
    "email": ("Email", "E-mail"),
    "candidate_type": ("Đối tượng thí sinh", "Candidate type"),
    "candidate_type_a": ("a. Học sinh lớp 12 năm nay", "a. Grade-12 student this year"),
    "candidate_type_b": (
        "b. Thí sinh tự do chưa tốt nghiệp THPT",
        "b. Free candidate, not yet graduated",
    ),
    "candidate_type_c": (
        "c. Thí sinh tự do đã có bằng tốt nghiệp THPT",
        "c. Free candidate with a high-school diploma",
    ),
    "candidate_type_d": (
        "d. Thí sinh tự do có bằng trung cấp",
        "d. Free candidate with a vocational diploma",
    ),
    "purposes": ("Mục đích dự thi", "Purpose"),
    "purpose_graduation": ("Xét công nhận tốt nghiệp THPT", "Graduation recognition"),
    "purpose_admission": ("Xét tuyển sinh đại học, cao đẳng", "University / college admission"),
    "electives": ("Hai môn tự chọn", "Two elective subjects"),
    "electives_hint": (
        "Chọn đúng 2 môn; không chọn cùng lúc hai môn Công nghệ. Toán và Ngữ văn là bắt buộc.",
        "Choose exactly 2, not both Technology subjects. Maths and Literature are compulsory.",
    ),
    "foreign_language": ("Ngoại ngữ dự thi", "Foreign language"),
    "foreign_language_hint": ("Chỉ khi chọn môn Ngoại ngữ", "Only if Ngoại ngữ is an elective"),
    "exemptions.foreign_language_certificate": (
        "Chứng chỉ miễn thi Ngoại ngữ",
        "Certificate exempting from the foreign-language paper",
    ),
    "priority_group": ("Đối tượng ưu tiên", "Priority group"),
    "exam_site_province": ("Nơi dự thi (tỉnh/thành phố)", "Exam site (province)"),
    # the rest of the Phiếu (issue 13)
    "section_photo": ("Ảnh chân dung", "Portrait photo"),
    "photo_sha256": ("Ảnh chân dung", "Portrait photo"),
    "photo_input": ("Chọn hoặc chụp ảnh", "Choose or take a photo"),
    "photo_hint": (
        "Ảnh thẻ, nền sáng, chụp trong vòng 6 tháng; JPEG hoặc PNG, ảnh dọc, ít nhất 400×600 "
        "điểm ảnh, tối đa {limit_mb} MB. Trên điện thoại có thể chụp trực tiếp.",
        "An ID-style photo on a light background, taken in the last 6 months; JPEG or PNG, "
        "portrait, at least 400×600 px, at most {limit_mb} MB. Phones can take it directly.",
    ),
    "photo_stored": ("Đã có ảnh (mã {digest}).", "Photo on file (reference {digest})."),
    "photo_replace": (
        "Chọn ảnh khác nếu muốn thay ảnh này.",
        "Choose another photo to replace this one.",
    ),
    "photo_alt": ("Ảnh chân dung của thí sinh", "The candidate's portrait photo"),
    "class_12": ("Tên lớp 12", "Grade-12 class"),
    "class_12_hint": ("Ví dụ 12A1 (học sinh lớp 12)", "E.g. 12A1 (grade-12 students)"),
    "contact_address": ("Địa chỉ liên hệ", "Contact address"),
    "contact_address_hint": (
        "Nơi nhận giấy báo; để trống nếu trùng nơi thường trú",
        "Where notices are sent; leave empty if it is your permanent residence",
    ),
    "foreign_national": ("Quốc tịch nước ngoài", "Foreign national"),
    "section_programme": ("Chương trình và đối tượng", "Curriculum and candidate status"),
    "curriculum": ("Chương trình học", "Curriculum"),
    "study_track": ("Hình thức học", "Track"),
    "diploma_year": ("Năm tốt nghiệp (thí sinh loại c, d)", "Diploma year (types c, d)"),
    "residence.district_code": ("Mã huyện (nếu có)", "District code (if any)"),
    "residence.difficult_commune_over_18_months": (
        "Thường trú trên 18 tháng tại xã đặc biệt khó khăn trong thời gian học THPT",
        "Lived over 18 months in an especially-difficult commune during upper secondary",
    ),
    "section_unit": ("Nơi đăng ký dự thi", "Registration unit"),
    "unit_hint": (
        "Học sinh lớp 12: trường đang học (để trống là trường lớp 12). Thí sinh tự do: đơn vị "
        "do Sở GDĐT chỉ định.",
        "Grade-12 students: their school (empty means the grade-12 school). Free candidates: "
        "the unit the DOET designates.",
    ),
    "registration_unit.province_code": ("Tỉnh của đơn vị", "Unit's province"),
    "registration_unit.unit_code": ("Đơn vị đăng ký dự thi", "Registration unit"),
    "section_exemptions": ("Miễn thi", "Exemptions"),
    "exemptions.foreign_language_basis": (
        "Căn cứ miễn thi Ngoại ngữ",
        "Ground of the FL exemption",
    ),
    "exemptions.certificate_score": (
        "Điểm / bậc trên chứng chỉ",
        "Score or level on the certificate",
    ),
    "exemptions.certificate_expires_on": ("Chứng chỉ có hạn đến", "Certificate valid until"),
    "exemptions.literature_certificate_level": (
        "Miễn thi Ngữ văn: bậc chứng chỉ tiếng Việt (3–6, người nước ngoài)",
        "Literature exemption: Vietnamese certificate level (3–6, foreign nationals)",
    ),
    "exemptions.all_papers_reason": ("Miễn thi tất cả các bài thi", "Exempt from every paper"),
    "section_reserved": ("Điểm bảo lưu (thí sinh tự do loại b, c)", "Reserved scores (types b, c)"),
    "reserved_subject": ("Bài thi / môn", "Paper / subject"),
    "reserved_score": ("Điểm", "Score"),
    "reserved_year": ("Năm thi", "Exam year"),
    "reserved_row": ("Dòng {row}", "Row {row}"),
    "reserved_scores": ("Điểm bảo lưu", "Reserved scores"),
    "graduation_priority": ("Diện ưu tiên xét tốt nghiệp", "Graduation priority"),
    "graduation_encouragement": ("Điểm khuyến khích xét tốt nghiệp", "Graduation encouragement"),
    "old_paper_hint": ("(chỉ chương trình GDPT 2006)", "(2006 curriculum only)"),
    "print_form": ("In phiếu đăng ký", "Print the registration form"),
    "print_pdf": ("Tải phiếu (PDF)", "Download the form (PDF)"),
    "print_title": ("Phiếu đăng ký dự thi (bản in)", "Registration form (print)"),
    "print_intro": (
        "Kiểm tra kỹ từng mục, in phiếu, ký tên và nộp cho đơn vị đăng ký dự thi để xác nhận.",
        "Check every item, print the form, sign it and hand it to your registration unit.",
    ),
    "print_none": (
        "Bạn chưa có phiếu đăng ký để in.",
        "You have no registration to print yet.",
    ),
    "verification_code": ("Mã xác thực", "Verification code"),
    "desk_whole_form": ("Toàn bộ phiếu", "The whole form"),
    "submit": ("Gửi phiếu đăng ký", "Submit registration"),
    "submit_hint": (
        "Nếu mạng lỗi, cứ bấm gửi lại: phiếu sẽ không bị ghi trùng.",
        "If the network fails, just submit again: your form will not be recorded twice.",
    ),
    "pending_restored": (
        "Lần gửi trước có thể chưa đến được hệ thống (mạng lỗi). Thông tin bạn đã nhập đã được "
        "khôi phục; hãy bấm gửi lại: phiếu sẽ không bị ghi trùng.",
        "Your last submission may not have arrived (network error). What you typed is restored; "
        "press submit again: it will not be recorded twice.",
    ),
    "key_reused": (
        "Phiếu này đã được gửi trước đó với nội dung khác. Vui lòng kiểm tra lại và gửi lại.",
        "This form was already sent with different content. Please check it and submit again.",
    ),
    "form_closed": (
        "Không thể gửi phiếu lúc này: hệ thống không trong thời gian đăng ký.",
        "The form cannot be submitted now: registration is not open.",
    ),
    # receipt
    "receipt_title": ("Biên nhận đăng ký dự thi", "Registration receipt"),
    "receipt_intro": (
        "Hệ thống đã nhận phiếu đăng ký của bạn. Hãy lưu hoặc in biên nhận này.",
        "Your registration was received. Keep or print this receipt.",
    ),
    "receipt_id": ("Mã biên nhận", "Receipt ID"),
    "version": ("Phiên bản phiếu", "Version"),
    "accepted_at": ("Thời điểm tiếp nhận", "Accepted at"),
    "persisted_at": ("Thời điểm lưu vào cơ sở dữ liệu", "Stored at"),
    "status": ("Trạng thái", "Status"),
    "phase": ("Đợt", "Window"),
    "phase_trial": ("Thử nghiệm", "Trial"),
    "phase_official": ("Chính thức", "Official"),
    "status_queued": (
        "Đã tiếp nhận, đang lưu…",
        "Accepted, being stored…",
    ),
    "status_persisted": ("Đã lưu vào cơ sở dữ liệu", "Stored in the database"),
    "status_needs_attention": (
        "Cần xử lý: đã tiếp nhận nhưng chưa lưu được",
        "Needs attention: accepted but not stored yet",
    ),
    "status_note": (
        "Phiếu đã tiếp nhận sẽ không bị mất; trạng thái tự cập nhật, không cần tải lại trang.",
        "An accepted form is never lost; this status updates by itself, no need to reload.",
    ),
    "candidate": ("Thí sinh", "Candidate"),
    "print": ("In biên nhận", "Print the receipt"),
    "go_status": ("Xem trạng thái hồ sơ", "See my registration"),
    "go_form": ("Mở phiếu đăng ký", "Open the registration form"),
    "not_recorded": ("—", "—"),
    # status
    "status_title": ("Trạng thái hồ sơ đăng ký", "My registration"),
    "no_registration": (
        "Bạn chưa nộp phiếu đăng ký dự thi.",
        "You have not submitted a registration yet.",
    ),
    "start_form": ("Điền phiếu đăng ký", "Fill in the registration form"),
    "edit_form": ("Sửa phiếu đăng ký", "Edit my registration"),
    "current_registration": ("Phiếu hiện tại", "Current registration"),
    "history": ("Lịch sử các phiên bản", "Version history"),
    "history_empty": ("Chưa có phiên bản nào được lưu.", "No version stored yet."),
    "view_receipt": ("Xem biên nhận", "View receipt"),
    # retry (overload)
    "retry_title": ("Hệ thống đang bận", "The system is busy"),
    "retry_intro": (
        "Rất nhiều thí sinh đang gửi phiếu cùng lúc. Phiếu của bạn CHƯA được ghi nhận, "
        "nhưng thông tin bạn đã nhập vẫn được giữ nguyên trên trang này.",
        "Many candidates are submitting at once. Your form has NOT been recorded yet, "
        "but everything you typed is kept on this page.",
    ),
    "retry_countdown": (
        "Tự động gửi lại sau {seconds} giây…",
        "Retrying automatically in {seconds} seconds…",
    ),
    "retry_now": ("Gửi lại ngay", "Retry now"),
    "retry_nojs": (
        "Nếu trang không tự gửi lại, hãy bấm nút sau khoảng {seconds} giây.",
        "If the page does not retry by itself, press the button after about {seconds} seconds.",
    ),
    "retry_edit": ("Quay lại sửa phiếu", "Back to the form"),
    # errors
    "error_title": ("Không thực hiện được", "Something went wrong"),
    "forbidden_form": (
        "Biểu mẫu đã hết hạn hoặc không hợp lệ. Vui lòng tải lại trang và thử lại.",
        "This form has expired or is not valid. Please reload the page and try again.",
    ),
    "not_found": (
        "Không tìm thấy trang hoặc biên nhận này.",
        "This page or receipt was not found.",
    ),
    "back_home": ("Về trang chính", "Back to the start"),
    "retry_after": (
        "Vui lòng thử lại sau {seconds} giây.",
        "Please try again in {seconds} seconds.",
    ),
}
_TWICE: Final = (
    (_CANDIDATE_CATALOG.keys() & DESK_CATALOG.keys())
    | (_CANDIDATE_CATALOG.keys() & REVIEW_CATALOG.keys())
    | (DESK_CATALOG.keys() & REVIEW_CATALOG.keys())
)
if _TWICE:
    raise RuntimeError(f"i18n keys defined twice: {_TWICE}")
CATALOG: Final[Mapping[str, tuple[str, str]]] = {
    **_CANDIDATE_CATALOG,
    **DESK_CATALOG,
    **REVIEW_CATALOG,
}


def language(query: str | None, cookie: str | None) -> Lang:
    """`?lang=` wins, then the cookie; Vietnamese otherwise (the candidates' language)."""
    for value in (query, cookie):
        if value == "en":
            return "en"
        if value == "vi":
            return "vi"
    return "vi"


def translator(lang: Lang) -> Callable[..., Markup]:
    """`t(key, **params)` for one language; an unknown key is a bug and raises KeyError.

    The catalog is trusted markup; parameters are escaped unless they are `Markup` themselves
    (the retry page's countdown is a `<span>` inside a sentence).
    """
    index = 1 if lang == "en" else 0

    def translate(key: str, **params: object) -> Markup:
        text = Markup(CATALOG[key][index])  # noqa: S704 - literals of this module only
        return text.format(**params) if params else text

    return translate
