using System.Collections.Frozen;

namespace Broker.Core.GeoIp;

/// <summary>ISO 3166-1 alpha-2 country codes, as country databases report them.</summary>
public static class CountryCodes
{
    // A fixed list rather than RegionInfo: ICU's region data differs between machines (it lacks EH,
    // Western Sahara, on Debian 12), and with invariant globalization it has none at all. XK
    // (Kosovo) is user-assigned in ISO 3166 but is what GeoLite2 and DB-IP report.
    private static readonly FrozenSet<string> Known = """
        AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
        BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE
        EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM
        HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC
        LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA
        NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
        SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
        TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW XK
        """.Split([' ', '\r', '\n'], StringSplitOptions.RemoveEmptyEntries).ToFrozenSet(StringComparer.Ordinal);

    /// <summary>The code upper-cased, or null when it is not a two-letter country code.</summary>
    public static string? Normalize(string? code)
    {
        var c = code?.Trim().ToUpperInvariant();
        return c is { Length: 2 } && char.IsAsciiLetterUpper(c[0]) && char.IsAsciiLetterUpper(c[1]) && Known.Contains(c) ? c : null;
    }

    /// <summary>Whether a database answer is usable as is: exactly a known upper-case code.</summary>
    internal static bool IsCanonical(string? code) => code is { Length: 2 } && Known.Contains(code);
}
