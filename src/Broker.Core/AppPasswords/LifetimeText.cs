using System.Globalization;

namespace Broker.Core.AppPasswords;

/// <summary>
/// Lifetimes as people type them (CLI, admin policy page): <c>90m</c>, <c>12h</c>, <c>30d</c>, or a
/// .NET time span (<c>30.00:00:00</c>). One reading everywhere, so a value means the same in both.
/// </summary>
public static class LifetimeText
{
    private const long MostUnits = 100_000;

    /// <summary>Reads a lifetime; on failure <paramref name="error"/> says what to write instead.</summary>
    public static bool TryParse(string? text, out TimeSpan value, out string error)
    {
        value = default;
        error = string.Empty;
        var v = (text ?? string.Empty).Trim();
        if (v.Length >= 2 && long.TryParse(v[..^1], NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is > 0 and < MostUnits)
        {
            switch (v[^1])
            {
                case 'm': value = TimeSpan.FromMinutes(n); return true;
                case 'h': value = TimeSpan.FromHours(n); return true;
                case 'd': value = TimeSpan.FromDays(n); return true;
            }
        }

        if (v.Length > 0 && v.All(char.IsAsciiDigit))
        {
            // TimeSpan would read "12" as 12 days: a bare number is refused rather than guessed.
            error = $"'{v}' has no unit: write {v}h for hours or {v}d for days.";
            return false;
        }

        if (TimeSpan.TryParse(v, CultureInfo.InvariantCulture, out value) && value > TimeSpan.Zero)
        {
            return true;
        }

        value = default;
        error = $"'{v}' is not a lifetime (use 90m, 12h, 30d).";
        return false;
    }

    /// <summary>The short form <see cref="TryParse"/> reads back: whole days, hours or minutes.</summary>
    public static string Format(TimeSpan t) =>
        t.Ticks % TimeSpan.TicksPerDay == 0 ? $"{t.Ticks / TimeSpan.TicksPerDay}d"
        : t.Ticks % TimeSpan.TicksPerHour == 0 ? $"{t.Ticks / TimeSpan.TicksPerHour}h"
        : $"{(long)t.TotalMinutes}m";

    /// <summary>For messages: "1 day", "30 days", "1 hour", "90 minutes".</summary>
    public static string Describe(TimeSpan t) =>
        t.Ticks % TimeSpan.TicksPerDay == 0 ? Plural(t.Ticks / TimeSpan.TicksPerDay, "day")
        : t.Ticks % TimeSpan.TicksPerHour == 0 ? Plural(t.Ticks / TimeSpan.TicksPerHour, "hour")
        : Plural((long)t.TotalMinutes, "minute");

    private static string Plural(long n, string unit) => n == 1 ? $"1 {unit}" : $"{n.ToString(CultureInfo.InvariantCulture)} {unit}s";
}
