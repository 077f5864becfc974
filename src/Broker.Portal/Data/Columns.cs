namespace Broker.Portal.Data;

/// <summary>Fitting text into the length-limited columns of the portal database.</summary>
internal static class Columns
{
    /// <summary>
    /// <paramref name="value"/> cut to at most <paramref name="maxLength"/> UTF-16 units, never between
    /// the two halves of a surrogate pair. PostgreSQL's driver refuses a lone half and the whole write
    /// fails (a 500 for a name with an emoji at the cut, a batch of audit events stuck for good);
    /// SQLite would store a replacement character instead of the emoji.
    /// </summary>
    public static string Clip(string value, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.Length <= maxLength)
        {
            return value;
        }

        var cut = maxLength > 0 && char.IsHighSurrogate(value[maxLength - 1]) ? maxLength - 1 : maxLength;
        return value[..cut];
    }
}
