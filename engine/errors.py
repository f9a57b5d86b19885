"""The errors examreg answers with: one base class, each subclass its HTTP status and machine code.

Owns the mapping from a failure to what a client sees; it must not import the web framework, so
pure modules (validation, batching) can raise these. `engine.app` renders them as
`application/problem+json` in one handler. Messages come in Vietnamese first, with English beside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field of a request body.

    `field` is a dotted path with list indexes (`schools.2.school_code`); "" means the body itself.
    """

    field: str
    code: str
    message: str
    message_en: str

    def to_json(self, lang: str = "vi") -> dict[str, str]:
        message = self.message_en if lang == "en" else self.message
        return {"field": self.field, "code": self.code, "message": message}


class ExamregError(Exception):
    """Base of every error that becomes an HTTP answer."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Yêu cầu không hợp lệ."
    title_en: ClassVar[str] = "The request is not valid."

    def __init__(
        self,
        detail: str | None = None,
        detail_en: str | None = None,
        *,
        retry_after: int | None = None,
        errors: tuple[FieldError, ...] = (),
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail_en or self.title_en)
        self.detail = detail or self.title
        self.detail_en = detail_en or self.title_en
        self.retry_after = retry_after
        self.errors = errors
        self.extra = extra or {}

    def to_problem(self, lang: str = "vi") -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://examreg.invalid/problems/{self.code}",
            "title": self.title_en if lang == "en" else self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail_en if lang == "en" else self.detail,
        }
        if self.errors:
            body["errors"] = [e.to_json(lang) for e in self.errors]
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        body.update(self.extra)
        return body


class MalformedRequest(ExamregError):
    """The body is not JSON, not UTF-8, or not an object."""

    status = 400
    code = "malformed_request"
    title = "Nội dung yêu cầu không đọc được (cần JSON UTF-8)."
    title_en = "The request body could not be read (JSON in UTF-8 expected)."


class UntrustedHost(ExamregError):
    """The Host header names a host this deployment does not serve (`EXAMREG_TRUSTED_HOSTS`)."""

    status = 400
    code = "untrusted_host"
    title = "Tên miền trong tiêu đề Host không thuộc hệ thống này."
    title_en = "The Host header names a host this server does not serve."


class IdempotencyKeyRequired(ExamregError):
    """A submission came without an `Idempotency-Key` header (or with an unusable one)."""

    status = 400
    code = "idempotency_key_required"
    title = "Thiếu tiêu đề Idempotency-Key (1–64 ký tự chữ, số, '-', '_')."
    title_en = "The Idempotency-Key header is required (1–64 letters, digits, '-', '_')."


class InvalidCredentials(ExamregError):
    """Login failed; deliberately silent on whether the account exists."""

    status = 401
    code = "invalid_credentials"
    title = "Số định danh hoặc mật khẩu không đúng."
    title_en = "The ID or the password is wrong."


class Unauthenticated(ExamregError):
    """No valid session token."""

    status = 401
    code = "unauthenticated"
    title = "Bạn cần đăng nhập."
    title_en = "You need to log in."


class Forbidden(ExamregError):
    """Authenticated, but the role does not allow this."""

    status = 403
    code = "forbidden"
    title = "Tài khoản của bạn không có quyền thực hiện thao tác này."
    title_en = "Your account is not allowed to do this."


class FormExpired(Forbidden):
    """A page's form did not echo its CSRF token (the session's, or the login page's cookie)."""

    code = "form_expired"
    title = "Biểu mẫu đã hết hạn hoặc không hợp lệ. Vui lòng tải lại trang và thử lại."
    title_en = "This form has expired or is not valid. Please reload the page and try again."


class PasswordChangeRequired(Forbidden):
    """The account still has its issued (or reset) password: only a change or a logout may pass."""

    code = "password_change_required"
    title = "Bạn cần đổi mật khẩu được cấp (hoặc mật khẩu tạm thời) trước khi làm việc khác."
    title_en = "You must change the password you were issued (or given at a reset) first."


class NotFound(ExamregError):
    """Unknown resource, or one that is not the caller's (the two look the same on purpose)."""

    status = 404
    code = "not_found"
    title = "Không tìm thấy."
    title_en = "Not found."


class NoRegistration(NotFound):
    """The candidate has not submitted anything yet."""

    code = "no_registration"
    title = "Bạn chưa nộp phiếu đăng ký dự thi."
    title_en = "You have not submitted a registration yet."


class MethodNotAllowed(ExamregError):
    """The route exists but not with this method."""

    status = 405
    code = "method_not_allowed"
    title = "Phương thức không được hỗ trợ."
    title_en = "Method not allowed."


class WindowClosed(ExamregError):
    """Submissions are accepted only while the trial or the official window is open."""

    status = 409
    code = "window_closed"
    title = "Hệ thống đăng ký dự thi đang đóng."
    title_en = "The registration window is closed."


class ReopenClosed(ExamregError):
    """A reopen that was already closed early, or whose time is up, cannot be closed again."""

    status = 409
    code = "reopen_closed"
    title = "Đợt mở lại này đã kết thúc."
    title_en = "This reopen has already ended."


class RequestTimeout(ExamregError):
    """The headers or the body did not arrive within the configured time (a stalled client)."""

    status = 408
    code = "request_timeout"
    title = "Yêu cầu gửi quá chậm nên đã bị ngắt. Vui lòng kiểm tra kết nối và gửi lại."
    title_en = "The request arrived too slowly and was cut off. Check the connection and resend."


class HeadersTooLarge(ExamregError):
    """Too many request headers, or too many bytes of them."""

    status = 431
    code = "headers_too_large"
    title = "Phần tiêu đề của yêu cầu quá lớn."
    title_en = "The request headers are too large."


class PayloadTooLarge(ExamregError):
    """The body is larger than the configured limit."""

    status = 413
    code = "payload_too_large"
    title = "Nội dung yêu cầu quá lớn."
    title_en = "The request body is too large."


class UnsupportedMediaType(ExamregError):
    """The body is not declared as JSON."""

    status = 415
    code = "unsupported_media_type"
    title = "Cần gửi nội dung dạng application/json."
    title_en = "The body must be application/json."


class InvalidRegistration(ExamregError):
    """The registration form broke one or more rules; `errors` lists every one of them."""

    status = 422
    code = "invalid_registration"
    title = "Phiếu đăng ký có thông tin chưa hợp lệ."
    title_en = "The registration form has invalid fields."


class InvalidRequest(ExamregError):
    """A non-form body (login, password change) broke a rule."""

    status = 422
    code = "invalid_request"
    title = "Thông tin gửi lên chưa hợp lệ."
    title_en = "The request has invalid fields."


class WeakPassword(ExamregError):
    """The new password does not meet the policy; `errors` says why (engine.domain.passwords)."""

    status = 422
    code = "weak_password"
    title = "Mật khẩu mới chưa đủ an toàn."
    title_en = "The new password is not safe enough."


class IdempotencyKeyReused(ExamregError):
    """The same Idempotency-Key came back with a different body."""

    status = 422
    code = "idempotency_key_reused"
    title = "Idempotency-Key này đã được dùng cho một phiếu khác."
    title_en = "This Idempotency-Key was already used with a different body."


class TooManyAttempts(ExamregError):
    """Too many failed logins for this account or address."""

    status = 429
    code = "too_many_attempts"
    title = "Bạn đã thử đăng nhập quá nhiều lần. Vui lòng thử lại sau."
    title_en = "Too many login attempts. Please try again later."


class RateLimited(ExamregError):
    """Too many requests from one candidate or client."""

    status = 429
    code = "rate_limited"
    title = "Bạn gửi quá nhiều yêu cầu. Vui lòng thử lại sau."
    title_en = "Too many requests. Please try again later."


class Overloaded(ExamregError):
    """The system sheds load: backlog, memory or login concurrency past its limit."""

    status = 503
    code = "overloaded"
    title = "Hệ thống đang quá tải. Phiếu của bạn chưa được ghi nhận, vui lòng gửi lại sau."
    title_en = "The system is overloaded. Your form was not recorded; please retry later."


class Unavailable(ExamregError):
    """A backing service (Redis, PostgreSQL) could not be reached in time."""

    status = 503
    code = "unavailable"
    title = "Hệ thống tạm thời gián đoạn. Vui lòng thử lại sau."
    title_en = "The service is temporarily unavailable. Please retry later."


class ReconcileRunning(ExamregError):
    """A reconciliation is already under way (one at a time); its report replaces the last."""

    status = 409
    code = "reconcile_running"
    title = "Một lượt đối soát đang chạy; hãy xem kết quả khi nó kết thúc."
    title_en = "A reconciliation is already running; read its report when it ends."


class VersionChanged(ExamregError):
    """A unit's review named a version that is no longer the candidate's newest (issue 13)."""

    status = 409
    code = "version_changed"
    title = "Thí sinh vừa gửi phiên bản mới; hãy xem lại trước khi xác nhận."
    title_en = "The candidate submitted a newer version; review it before confirming."


class InvalidPhoto(ExamregError):
    """A photo upload the rules refuse (domain.md §4.1 H3); each subclass says why, with a code."""

    status = 422
    code = "invalid_photo"
    title = "Ảnh không hợp lệ."
    title_en = "The photo is not acceptable."


class PhotoTooLarge(InvalidPhoto):
    status = 413
    code = "photo_too_large"
    title = "Tệp ảnh quá lớn."
    title_en = "The photo file is too large."


class PhotoUnsupportedType(InvalidPhoto):
    status = 415
    code = "photo_unsupported_type"
    title = "Chỉ nhận ảnh JPEG hoặc PNG."
    title_en = "Only JPEG or PNG photos are accepted."


class PhotoNotAnImage(InvalidPhoto):
    code = "photo_not_an_image"
    title = "Tệp này không phải ảnh JPEG hoặc PNG đọc được."
    title_en = "This file is not a readable JPEG or PNG image."


class PhotoTooSmall(InvalidPhoto):
    code = "photo_too_small"
    title = "Ảnh quá nhỏ: cần ít nhất 400×600 điểm ảnh."
    title_en = "The photo is too small: at least 400×600 px."


class PhotoLandscape(InvalidPhoto):
    code = "photo_landscape"
    title = "Ảnh phải là ảnh dọc."
    title_en = "The photo must be portrait."


class PhotoBomb(InvalidPhoto):
    code = "photo_bomb"
    title = "Ảnh có quá nhiều điểm ảnh để xử lý."
    title_en = "The image has too many pixels to process."


class PhotoLetterboxed(InvalidPhoto):
    code = "photo_letterboxed"
    title = "Ảnh có viền đen/trắng trên và dưới (ảnh chụp màn hình?)."
    title_en = "The photo has uniform bands above and below (a screenshot?)."
