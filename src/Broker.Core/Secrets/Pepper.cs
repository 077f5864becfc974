using System.Security.Cryptography;
using Microsoft.Extensions.Options;

namespace Broker.Core.Secrets;

/// <summary>The loaded pepper. Resolved once at start-up; a problem is a start-up failure that names the setting.</summary>
public sealed class Pepper
{
    private readonly byte[] _key;

    public Pepper(byte[] key) => _key = key;

    internal ReadOnlySpan<byte> Key => _key;

    public static Pepper Load(PepperOptions options)
    {
        string? encoded;
        string source;
        if (!string.IsNullOrWhiteSpace(options.Value))
        {
            encoded = options.Value;
            source = $"{PepperOptions.SectionName}:Value";
        }
        else if (!string.IsNullOrWhiteSpace(options.File))
        {
            if (!System.IO.File.Exists(options.File))
            {
                throw new OptionsValidationException(PepperOptions.SectionName, typeof(PepperOptions),
                    [$"{PepperOptions.SectionName}:File points to '{options.File}', which does not exist."]);
            }

            encoded = System.IO.File.ReadAllText(options.File);
            source = $"{PepperOptions.SectionName}:File ({options.File})";
        }
        else if (!string.IsNullOrWhiteSpace(options.GenerateFile))
        {
            encoded = LoadOrGenerate(options.GenerateFile, options.MinimumBytes);
            source = options.GenerateFile;
        }
        else
        {
            throw new OptionsValidationException(PepperOptions.SectionName, typeof(PepperOptions),
                [$"No pepper configured. Set {PepperOptions.SectionName}:File (recommended) or {PepperOptions.SectionName}:Value to base64 of at least {options.MinimumBytes} random bytes, e.g. `openssl rand -base64 32`. It must be the same on every Broker instance and must never change, or every app password stops working."]);
        }

        byte[] key;
        try
        {
            key = Convert.FromBase64String(encoded.Trim());
        }
        catch (FormatException)
        {
            throw new OptionsValidationException(PepperOptions.SectionName, typeof(PepperOptions),
                [$"The pepper from {source} is not valid base64."]);
        }

        if (key.Length < options.MinimumBytes)
        {
            throw new OptionsValidationException(PepperOptions.SectionName, typeof(PepperOptions),
                [$"The pepper from {source} has {key.Length} bytes; at least {options.MinimumBytes} are required."]);
        }

        return new Pepper(key);
    }

    private static string LoadOrGenerate(string path, int bytes)
    {
        if (System.IO.File.Exists(path))
        {
            return System.IO.File.ReadAllText(path);
        }

        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var value = Convert.ToBase64String(RandomNumberGenerator.GetBytes(Math.Max(bytes, 32)));
        // Owner-only from the first byte written: the pepper is as sensitive as the credentials.
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var stream = new FileStream(path, options))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(value);
        }

        return value;
    }
}

/// <summary>Loads the pepper once during options validation so that a missing or weak pepper stops start-up.</summary>
internal sealed class PepperOptionsValidator : IValidateOptions<PepperOptions>
{
    public ValidateOptionsResult Validate(string? name, PepperOptions options)
    {
        try
        {
            Pepper.Load(options);
            return ValidateOptionsResult.Success;
        }
        catch (OptionsValidationException ex)
        {
            return ValidateOptionsResult.Fail(ex.Failures);
        }
    }
}
