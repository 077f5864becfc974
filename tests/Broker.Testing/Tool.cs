namespace Broker.Testing;

/// <summary>Finds programs the test command installed; a missing one is a failure that says how to install it, never a skip.</summary>
public static class Tool
{
    public static string Find(string name, params string[] extraDirs)
    {
        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':')
            .Concat(["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"])
            .Concat(extraDirs);
        foreach (var dir in dirs)
        {
            var path = Path.Combine(dir, name);
            if (File.Exists(path))
            {
                return path;
            }
        }

        throw new InvalidOperationException($"'{name}' is not installed. Run the README's test command (tests/run.sh), which installs it.");
    }
}
