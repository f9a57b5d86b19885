-- Support desk: accent-insensitive name search, and fast audit-log reads.
SET lock_timeout = '5s';

-- "nguyen van an" must find "NGUYỄN VĂN AN" (issue 4). translate() and lower() are immutable, so
-- the folded name can be a stored generated column with plain btree indexes: no extension needed.
-- The mapping covers every precomposed Vietnamese letter (names are stored NFC) in both cases.
-- Collation "C": the folded name is plain ASCII, and a C-collated btree serves both LIKE 'prefix%'
-- and ORDER BY name_folded, so a prefix search reads only the page it returns.
ALTER TABLE candidates ADD COLUMN name_folded text COLLATE "C" GENERATED ALWAYS AS (
    lower(translate(
        full_name,
        'ÀÁẢÃẠĂẰẮẲẴẶÂẦẤẨẪẬĐÈÉẺẼẸÊỀẾỂỄỆÌÍỈĨỊÒÓỎÕỌÔỒỐỔỖỘƠỜỚỞỠỢÙÚỦŨỤƯỪỨỬỮỰỲÝỶỸỴàáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵ',
        'aaaaaaaaaaaaaaaaadeeeeeeeeeeeiiiiiooooooooooooooooouuuuuuuuuuuyyyyyaaaaaaaaaaaaaaaaadeeeeeeeeeeeiiiiiooooooooooooooooouuuuuuuuuuuyyyyy'
    ))
) STORED;

-- Name + date of birth (the usual phone-call lookup), and name prefixes alone.
CREATE INDEX candidates_name_dob_idx ON candidates (name_folded, date_of_birth, candidate_id);
CREATE INDEX candidates_name_prefix_idx ON candidates (name_folded, candidate_id);
-- Listing a school's candidates page by page.
CREATE INDEX candidates_school_page_idx ON candidates (province_code, school_code, candidate_id);
DROP INDEX IF EXISTS candidates_school_idx;

CREATE INDEX audit_log_at_idx ON audit_log (at);
