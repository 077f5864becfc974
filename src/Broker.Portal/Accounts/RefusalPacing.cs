namespace Broker.Portal.Accounts;

/// <summary>
/// Holds a refused sign-in until the next multiple of a fixed interval since the request began,
/// so its response time no longer tells an existing account (whose refusal writes the attempt count
/// and an activity entry) from a name that does not exist (nothing written).
/// </summary>
/// <remarks>
/// A fixed floor alone would leak again whenever the work took longer than the floor (a slow
/// database, a loaded machine); rounding up to the next multiple keeps the answers on the same few
/// values, and a difference of a few milliseconds changes the value only when the work happens to
/// end just at a boundary.
/// </remarks>
public static class RefusalPacing
{
    /// <summary>How much longer to wait after <paramref name="elapsed"/>; zero when <paramref name="interval"/> is zero (pacing off).</summary>
    public static TimeSpan Remaining(TimeSpan elapsed, TimeSpan interval)
    {
        if (interval <= TimeSpan.Zero)
        {
            return TimeSpan.Zero;
        }

        var ticks = Math.Max(elapsed.Ticks, 0);
        var beats = Math.Max(1, (ticks + interval.Ticks - 1) / interval.Ticks);
        return TimeSpan.FromTicks((beats * interval.Ticks) - ticks);
    }
}
