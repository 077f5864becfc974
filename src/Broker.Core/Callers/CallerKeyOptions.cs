namespace Broker.Core.Callers;

/// <summary>API keys of the mail servers allowed to call the validation API.</summary>
public sealed class CallerKeyOptions
{
    public const string SectionName = "Broker:Callers";

    /// <summary>Header that carries the key.</summary>
    public const string HeaderName = "X-Broker-Api-Key";

    /// <summary>
    /// Keys fixed in configuration, as name → lower-case hex SHA-256 of the key
    /// (<c>printf %s KEY | sha256sum</c>). Keys created with <c>broker apikey create</c> live in
    /// Redis instead and need no restart.
    /// </summary>
    public Dictionary<string, string> Keys { get; set; } = [];

    /// <summary>Bounds of <see cref="RefreshInterval"/>: a new or deleted key must take effect soon, without polling Redis in a loop.</summary>
    public static readonly TimeSpan ShortestRefresh = TimeSpan.FromMilliseconds(100), LongestRefresh = TimeSpan.FromMinutes(10);

    /// <summary>How often keys stored in Redis are re-read (100 ms – 10 min).</summary>
    public TimeSpan RefreshInterval { get; set; } = TimeSpan.FromSeconds(10);
}
