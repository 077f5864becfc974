using Broker.Core.AppPasswords;

namespace Broker.Core.Tests.AppPasswords;

/// <summary>The one reading of typed lifetimes, shared by the CLI and the admin policy page.</summary>
public sealed class LifetimeTextTests
{
    [Theory]
    [InlineData("90m", 0, 1, 30)]
    [InlineData("12h", 0, 12, 0)]
    [InlineData(" 30d ", 30, 0, 0)]
    [InlineData("30.00:00:00", 30, 0, 0)]
    [InlineData("01:30:00", 0, 1, 30)]
    public void TryParse_UnitsAndTimeSpans_AreRead(string text, int days, int hours, int minutes)
    {
        Assert.True(LifetimeText.TryParse(text, out var value, out var error));
        Assert.Equal(new TimeSpan(days, hours, minutes, 0), value);
        Assert.Empty(error);
    }

    [Theory]
    [InlineData("12", "'12' has no unit: write 12h for hours or 12d for days.")]
    [InlineData("soon", "'soon' is not a lifetime (use 90m, 12h, 30d).")]
    [InlineData("0d", "'0d' is not a lifetime (use 90m, 12h, 30d).")]
    [InlineData("-1d", "'-1d' is not a lifetime (use 90m, 12h, 30d).")]
    [InlineData("-01:00:00", "'-01:00:00' is not a lifetime (use 90m, 12h, 30d).")]
    [InlineData("1H", "'1H' is not a lifetime (use 90m, 12h, 30d).")]
    [InlineData("", "'' is not a lifetime (use 90m, 12h, 30d).")]
    [InlineData(null, "'' is not a lifetime (use 90m, 12h, 30d).")]
    public void TryParse_BareNumbersAndNonsense_AreRefusedWithWhatToWrite(string? text, string message)
    {
        Assert.False(LifetimeText.TryParse(text, out var value, out var error));
        Assert.Equal(TimeSpan.Zero, value);
        Assert.Equal(message, error);
    }

    [Theory]
    [InlineData(30, 0, 0, "30d", "30 days")]
    [InlineData(1, 0, 0, "1d", "1 day")]
    [InlineData(0, 1, 0, "1h", "1 hour")]
    [InlineData(0, 36, 0, "36h", "36 hours")]
    [InlineData(0, 0, 90, "90m", "90 minutes")]
    public void FormatAndDescribe_ReadBackAndReadWell(int days, int hours, int minutes, string format, string describe)
    {
        var t = new TimeSpan(days, hours, minutes, 0);

        Assert.Equal(format, LifetimeText.Format(t));
        Assert.Equal(describe, LifetimeText.Describe(t));
        Assert.True(LifetimeText.TryParse(LifetimeText.Format(t), out var back, out _));
        Assert.Equal(t, back);
    }
}
