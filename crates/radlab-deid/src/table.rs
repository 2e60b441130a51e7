//! The types of the PS3.15 Table E.1-1 rows; the rows themselves are generated into
//! `annex_e_table.rs` from the standard's machine-readable table.

/// An action code of PS3.15 E.3 (with the compound codes of Table E.1-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Replace with a non-zero length dummy value consistent with the VR.
    D,
    /// Replace with a zero length value, or a non-zero length dummy value.
    Z,
    /// Remove.
    X,
    /// Keep (unchanged for non-sequence attributes, cleaned for sequences).
    K,
    /// Clean: replace with values of similar meaning known not to contain identifying
    /// information.
    C,
    /// Replace with a non-zero length UID that is internally consistent within a set.
    U,
    /// X unless Z is required to maintain IOD conformance (Type 3 versus Type 2).
    XZ,
    /// X unless D is required (Type 3 versus Type 1).
    XD,
    /// X unless Z or D is required (Type 3 versus Type 2 versus Type 1).
    XZD,
    /// Z unless D is required (Type 2 versus Type 1).
    ZD,
    /// X unless Z or replacement of contained instance UIDs (U) is required.
    XZUStar,
}

/// The options (columns) of Table E.1-1, PS3.15 E.3.1 to E.3.11.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeidOption {
    RetainSafePrivate,
    RetainUids,
    RetainDeviceIdentity,
    RetainInstitutionIdentity,
    RetainPatientCharacteristics,
    RetainLongitudinalFullDates,
    RetainLongitudinalModifiedDates,
    CleanDescriptors,
    CleanStructuredContent,
    CleanGraphics,
}

impl DeidOption {
    pub const ALL: [DeidOption; 10] = [
        DeidOption::RetainSafePrivate,
        DeidOption::RetainUids,
        DeidOption::RetainDeviceIdentity,
        DeidOption::RetainInstitutionIdentity,
        DeidOption::RetainPatientCharacteristics,
        DeidOption::RetainLongitudinalFullDates,
        DeidOption::RetainLongitudinalModifiedDates,
        DeidOption::CleanDescriptors,
        DeidOption::CleanStructuredContent,
        DeidOption::CleanGraphics,
    ];

    /// The option's code in CID 7050 (De-identification Method), coding scheme DCM.
    pub fn code(self) -> (&'static str, &'static str) {
        match self {
            DeidOption::RetainSafePrivate => ("113111", "Retain Safe Private Option"),
            DeidOption::RetainUids => ("113110", "Retain UIDs Option"),
            DeidOption::RetainDeviceIdentity => ("113109", "Retain Device Identity Option"),
            DeidOption::RetainInstitutionIdentity => {
                ("113112", "Retain Institution Identity Option")
            }
            DeidOption::RetainPatientCharacteristics => {
                ("113108", "Retain Patient Characteristics Option")
            }
            DeidOption::RetainLongitudinalFullDates => (
                "113106",
                "Retain Longitudinal Temporal Information Full Dates Option",
            ),
            DeidOption::RetainLongitudinalModifiedDates => (
                "113107",
                "Retain Longitudinal Temporal Information Modified Dates Option",
            ),
            DeidOption::CleanDescriptors => ("113105", "Clean Descriptors Option"),
            DeidOption::CleanStructuredContent => ("113104", "Clean Structured Content Option"),
            DeidOption::CleanGraphics => ("113103", "Clean Graphics Option"),
        }
    }

    /// The command-line / profile name of the option.
    pub fn name(self) -> &'static str {
        match self {
            DeidOption::RetainSafePrivate => "retain-safe-private",
            DeidOption::RetainUids => "retain-uids",
            DeidOption::RetainDeviceIdentity => "retain-device-identity",
            DeidOption::RetainInstitutionIdentity => "retain-institution-identity",
            DeidOption::RetainPatientCharacteristics => "retain-patient-characteristics",
            DeidOption::RetainLongitudinalFullDates => "retain-full-dates",
            DeidOption::RetainLongitudinalModifiedDates => "retain-modified-dates",
            DeidOption::CleanDescriptors => "clean-descriptors",
            DeidOption::CleanStructuredContent => "clean-structured-content",
            DeidOption::CleanGraphics => "clean-graphics",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        DeidOption::ALL.into_iter().find(|o| o.name() == name)
    }
}

/// Which attributes a row applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagPattern {
    Exact(u16, u16),
    /// Repeating groups: the group masked with `group_mask` equals `group`, and the element
    /// equals `element` (or any element when `None`); e.g. (60xx,3000), (50xx,xxxx).
    Repeating {
        group: u16,
        group_mask: u16,
        element: Option<u16>,
    },
    /// Every private attribute (odd group).
    Private,
}

impl TagPattern {
    pub fn matches(self, group: u16, element: u16) -> bool {
        match self {
            TagPattern::Exact(g, e) => g == group && e == element,
            TagPattern::Repeating {
                group: g,
                group_mask,
                element: e,
            } => group & group_mask == g && e.is_none_or(|e| e == element),
            TagPattern::Private => group % 2 == 1,
        }
    }
}

/// One row of Table E.1-1.
#[derive(Debug, Clone, Copy)]
pub struct ProfileEntry {
    pub tag: TagPattern,
    pub name: &'static str,
    pub basic: Action,
    /// What each option does to this attribute where the table says (K or C).
    pub options: &'static [(DeidOption, Action)],
}
