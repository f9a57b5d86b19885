"""The registration validator's messages: Vietnamese first, English beside, per error code.

Owns the wording candidates read next to a field; codes stay English and stable. Split from
`engine.domain.registration` so the rules read without two hundred lines of prose between them.
"""

from __future__ import annotations

from typing import Final

KINDS: Final = {
    "string": ("chuỗi ký tự", "a string"),
    "integer": ("số nguyên", "an integer"),
    "boolean": ("true hoặc false", "true or false"),
    "list": ("danh sách", "a list"),
    "object": ("đối tượng JSON", "an object"),
}
# Default (Vietnamese, English) text per error code; `{…}` are filled from the call's parameters.
MESSAGES: Final = {
    "not_an_object": (
        "Phiếu đăng ký phải được gửi dưới dạng một đối tượng JSON. Vui lòng gửi lại.",
        "The form must be sent as a JSON object.",
    ),
    "unknown_field": (
        "Trường thông tin này không có trong phiếu đăng ký. Vui lòng bỏ trường này.",
        "This field is not part of the form; please remove it.",
    ),
    "required": ("Vui lòng nhập thông tin này.", "This field is required."),
    "wrong_type": (
        "Kiểu dữ liệu không đúng (cần {kind_vi}). Vui lòng nhập lại.",
        "Wrong type: {kind_en} is expected.",
    ),
    "too_short": ("Vui lòng nhập ít nhất {limit} ký tự.", "Enter at least {limit} characters."),
    "too_long": ("Vui lòng nhập tối đa {limit} ký tự.", "Enter at most {limit} characters."),
    "invalid_characters": (
        "Thông tin này có ký tự không hợp lệ. Vui lòng nhập lại.",
        "This field contains characters that are not allowed.",
    ),
    "invalid_date": (
        "Ngày không hợp lệ. Vui lòng nhập theo dạng năm-tháng-ngày, ví dụ 2008-03-15.",
        "Invalid date; use YYYY-MM-DD, e.g. 2008-03-15.",
    ),
    "implausible_date": (
        "Ngày sinh chưa hợp lý: tuổi thí sinh phải từ {low} đến {high}. Vui lòng kiểm tra lại.",
        "Implausible date of birth: the candidate must be {low} to {high} years old.",
    ),
    "invalid_choice": (
        "Giá trị không hợp lệ. Vui lòng chọn một trong các giá trị: {choices}.",
        "Invalid value; choose one of: {choices}.",
    ),
    "invalid_format": (
        "Vui lòng nhập đúng {digits} chữ số.",
        "Enter exactly {digits} digits.",
    ),
    "out_of_range": (
        "Vui lòng nhập một số từ {low} đến {high}.",
        "Enter a number from {low} to {high}.",
    ),
    "mismatch_roster": (
        "Số định danh cá nhân không khớp với tài khoản đăng nhập. "
        "Vui lòng nhập đúng số định danh của bạn.",
        "The ID number does not match the account you are logged in with.",
    ),
    "sex_mismatch": (
        "Chữ số thứ 4 của số định danh cá nhân không khớp với giới tính. "
        "Vui lòng kiểm tra lại giới tính hoặc số định danh.",
        "Digit 4 of the ID number does not match the sex given.",
    ),
    "century_mismatch": (
        "Chữ số thứ 4 của số định danh cá nhân không khớp với thế kỷ của năm sinh. "
        "Vui lòng kiểm tra lại ngày sinh hoặc số định danh.",
        "Digit 4 of the ID number does not match the century of the birth year.",
    ),
    "birth_year_mismatch": (
        "Chữ số thứ 5 và 6 của số định danh cá nhân phải là hai số cuối của năm sinh. "
        "Vui lòng kiểm tra lại ngày sinh hoặc số định danh.",
        "Digits 5–6 of the ID number must be the last two digits of the birth year.",
    ),
    "unknown_ethnicity": (
        "Không tìm thấy dân tộc này. Vui lòng chọn trong danh sách 54 dân tộc (ví dụ: Kinh, Tày).",
        "Unknown ethnicity; choose one of the 54 groups (e.g. Kinh, Tày).",
    ),
    "unknown_province": (
        "Mã tỉnh không có trong danh mục. Vui lòng chọn tỉnh/thành phố trong danh sách.",
        "Unknown province code; choose a province from the list.",
    ),
    "unknown_school": (
        "Không tìm thấy mã trường này trong tỉnh đã chọn. "
        "Vui lòng kiểm tra lại mã tỉnh và mã trường.",
        "No school with this code in the chosen province; check both codes.",
    ),
    "wrong_count": ("Vui lòng chọn đúng 2 môn tự chọn.", "Choose exactly 2 electives."),
    "duplicate_grade": (
        "Lớp này đã được khai ở dòng khác. Mỗi lớp chỉ khai một lần.",
        "This grade is already given in another row; give each grade once.",
    ),
    "grades_incomplete": (
        "Học sinh lớp 12 cần khai đủ nơi học của lớp 10, 11 và 12, mỗi lớp một dòng.",
        "Grade-12 students must give their school for grades 10, 11 and 12, one row each.",
    ),
    "invalid_phone": (
        "Số điện thoại di động không hợp lệ. Vui lòng nhập số di động Việt Nam, ví dụ 0912345678.",
        "Invalid mobile number; enter a Vietnamese mobile number, e.g. 0912345678.",
    ),
    "invalid_email": (
        "Địa chỉ email không hợp lệ. Vui lòng nhập theo dạng ten@tenmien.vn hoặc để trống.",
        "Invalid e-mail address; use name@domain.tld or leave it empty.",
    ),
    "empty": (
        "Vui lòng chọn ít nhất một mục đích dự thi.",
        "Choose at least one purpose.",
    ),
    "duplicate": (
        "Lựa chọn này bị trùng. Vui lòng bỏ lựa chọn lặp lại.",
        "This choice is repeated; remove the duplicate.",
    ),
    "exclusive_subjects": (
        "Không được chọn cùng lúc Công nghệ – Công nghiệp và Công nghệ – Nông nghiệp. "
        "Vui lòng chỉ chọn một trong hai môn.",
        "Công nghệ – Công nghiệp and Công nghệ – Nông nghiệp cannot both be chosen.",
    ),
    "not_allowed": (
        "Chỉ khai thông tin này khi bạn chọn môn Ngoại ngữ. "
        "Vui lòng để trống hoặc chọn môn Ngoại ngữ.",
        "Only allowed when Ngoại ngữ (foreign language) is one of the electives.",
    ),
    "unknown_certificate": (
        "Chứng chỉ này không có trong danh mục được miễn thi Ngoại ngữ. "
        "Vui lòng chọn chứng chỉ trong danh sách.",
        "This certificate is not on the list that exempts from the foreign-language paper.",
    ),
    "certificate_language_mismatch": (
        "Chứng chỉ này không phải chứng chỉ {language_vi}, ngoại ngữ bạn đăng ký dự thi. "
        "Vui lòng chọn chứng chỉ đúng thứ tiếng hoặc bỏ đề nghị miễn thi.",
        "This certificate is not for {language_en}, the language you registered.",
    ),
    "not_for_type": (
        "Thông tin này chỉ dành cho thí sinh thuộc đối tượng {types}. Vui lòng để trống.",
        "Only candidates of type {types} give this; leave it empty.",
    ),
    "old_curriculum_closed": (
        "Năm nay không tổ chức thi theo chương trình GDPT 2006. "
        "Vui lòng chọn chương trình GDPT 2018.",
        "There is no 2006-curriculum paper this year; choose the 2018 curriculum.",
    ),
    "old_curriculum_type": (
        "Học sinh lớp 12 năm nay dự thi theo chương trình GDPT 2018. Vui lòng chọn GDPT 2018.",
        "Grade-12 students of this year sit the 2018-curriculum papers.",
    ),
    "old_curriculum_papers": (
        "Thí sinh chương trình GDPT 2006 chọn đúng một bài thi tổ hợp "
        "(KHTN hoặc KHXH){language_vi}.",
        "2006-curriculum candidates choose exactly one combined paper (KHTN or KHXH){language_en}.",
    ),
    "foreign_only": (
        "Chỉ thí sinh là người nước ngoài mới được miễn thi Ngữ văn. "
        "Vui lòng đánh dấu quốc tịch nước ngoài hoặc bỏ đề nghị miễn thi.",
        "Only foreign nationals may be exempted from Literature.",
    ),
    "certificate_expired": (
        "Chứng chỉ phải còn hạn đến ngày làm thủ tục dự thi ({day}). "
        "Vui lòng kiểm tra ngày hết hạn.",
        "The certificate must be valid up to the exam-procedures day ({day}).",
    ),
    "basis_needs_certificate": (
        "Vui lòng chọn chứng chỉ ngoại ngữ được dùng để miễn thi.",
        "Choose the certificate the exemption rests on.",
    ),
    "invalid_score": (
        "Điểm phải là số từ 0 đến 10, ví dụ 6.5.",
        "A score is a number from 0 to 10, e.g. 6.5.",
    ),
    "score_below_threshold": (
        "Chỉ bảo lưu được bài thi đạt từ {low} điểm trở lên.",
        "Only a score of {low} or more can be reserved.",
    ),
    "invalid_year": (
        "Năm không hợp lệ: vui lòng nhập năm từ {low} đến {high}.",
        "Invalid year: enter a year from {low} to {high}.",
    ),
    "abolished": (
        "Điểm khuyến khích chứng nhận nghề đã bỏ từ năm 2025. Vui lòng bỏ lựa chọn này.",
        "The vocational-certificate encouragement point was abolished from 2025.",
    ),
    "unit_not_school": (
        "Học sinh lớp 12 đăng ký dự thi tại chính trường mình đang học lớp 12. "
        "Vui lòng chọn đúng trường lớp 12.",
        "Grade-12 students register at their own grade-12 school.",
    ),
    "invalid_hash": (
        "Ảnh chưa được tải lên đúng cách. Vui lòng tải ảnh lại.",
        "Not a photo reference (64 hexadecimal digits); upload the photo again.",
    ),
    "unknown_photo": (
        "Không tìm thấy ảnh đã tải lên. Vui lòng tải ảnh lại.",
        "No uploaded photo has this reference; upload the photo again.",
    ),
    "commune_required": (
        "Vui lòng nhập mã xã đặc biệt khó khăn nơi bạn thường trú.",
        "Enter the code of the especially-difficult commune you lived in.",
    ),
    "invalid_class": (
        "Tên lớp chỉ gồm chữ, số, dấu cách, dấu chấm, dấu gạch (tối đa 20 ký tự), ví dụ 12A1.",
        "A class name has letters, digits, spaces, dots and dashes (at most 20), e.g. 12A1.",
    ),
}
NAME_CHARACTERS: Final = (
    "Họ và tên chỉ được gồm chữ cái (có dấu), dấu cách, dấu nháy (') và dấu gạch ngang (-). "
    "Vui lòng nhập lại.",
    "The name may contain only letters, spaces, apostrophes (') and hyphens (-).",
)
SCHOOL_COUNT: Final = (
    "Vui lòng khai tối đa 3 dòng nơi học (lớp 10, 11 và 12).",
    "Give at most 3 school rows (grades 10, 11 and 12).",
)
CONTROL_CHARACTERS: Final = (
    "Thông tin này có ký tự điều khiển hoặc ký tự không hợp lệ (thường do sao chép từ nơi khác). "
    "Vui lòng gõ lại thông tin này.",
    "This field contains control characters or invalid code points (often from copy and paste); "
    "please type it again.",
)
NAME_TOO_LONG_UPPER: Final = (
    "Họ và tên khi viết hoa dài quá {limit} ký tự (một số chữ viết hoa thành hai, ba chữ, "
    "ví dụ ß thành SS). Vui lòng nhập tên ngắn hơn hoặc thay các chữ đó.",
    "Written in capitals the name is longer than {limit} characters (some letters become two or "
    "three, e.g. ß becomes SS); shorten it or replace those letters.",
)
FREE_CHOICE_COUNT: Final = (
    "Thí sinh đã tốt nghiệp chọn 1 hoặc 2 môn tự chọn (chỉ những môn cần để xét tuyển).",
    "Graduates choose 1 or 2 electives (only the subjects they need for admission).",
)
PHOTO_REQUIRED: Final = (
    "Vui lòng tải lên ảnh chân dung (ảnh thẻ, chụp trong vòng 6 tháng).",
    "Upload an ID-style portrait photo taken in the last 6 months.",
)
ADDRESS_CHARACTERS: Final = (
    "Địa chỉ có ký tự điều khiển không hợp lệ. Vui lòng nhập lại.",
    "The address contains control characters.",
)
PLACE_CHARACTERS: Final = (
    "Nơi sinh phải là tên tỉnh/thành phố, hoặc tên nước bằng tiếng Việt nếu sinh ở nước ngoài "
    "(chỉ gồm chữ cái, dấu cách và dấu gạch ngang). Vui lòng nhập lại.",
    "The birthplace must be a province, or a country in Vietnamese (letters, spaces, hyphens).",
)


def message(code: str, **params: object) -> tuple[str, str]:
    """The (vi, en) text for `code`, with `{…}` filled from `params`."""
    vi, en = MESSAGES[code]
    return vi.format(**params), en.format(**params)
