namespace Broker.Core.Secrets;

/// <summary>Writes a secret (a pepper, a caller key) into a new file only its owner may read.</summary>
public static class OwnerOnlyFile
{
    /// <summary>
    /// Creates <paramref name="path"/> with <paramref name="content"/>; fails if it exists. The mode
    /// is set at creation, so the secret is never readable by others, not even for a moment.
    /// </summary>
    public static void Create(string path, string content)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using var stream = new FileStream(path, options);
        using var writer = new StreamWriter(stream);
        writer.Write(content);
    }
}
