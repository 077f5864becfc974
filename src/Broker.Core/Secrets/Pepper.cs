using System.Security.Cryptography;
using Microsoft.Extensions.Options;

namespace Broker.Core.Secrets;

/// <summary>
/// The loaded pepper, and the other one while a rotation is under way. Resolved once at
/// start-up; a problem is a start-up failure that names the setting.
/// </summary>
public sealed class Pepper
{
    private static readonly byte[] IdLabel = "broker-pepper-id-v1"u8.ToArray();

    private readonly byte[] _key;
    private readonly byte[]? _other;

    public Pepper(byte[] key, byte[]? other = null)
    {
        _key = key;
        _other = other;
        Id = IdOf(key);
    }

    internal ReadOnlySpan<byte> Key => _key;

    /// <summary>The other pepper of a rotation: app passwords hashed with it still work, and move to <see cref="Key"/> at their next login.</summary>
    internal byte[]? Other => _other;

    /// <summary>
    /// A name for this pepper that reveals nothing about it (a keyed hash of a fixed label), stored
    /// with each app password so that the store can count those not yet under the current pepper.
    /// </summary>
    public string Id { get; }

    internal static string IdOf(ReadOnlySpan<byte> key) => Convert.ToHexStringLower(HMACSHA256.HashData(key, IdLabel))[..16];

    public static Pepper Load(PepperOptions options)
    {
        var key = LoadCurrent(options);
        if (string.IsNullOrWhiteSpace(options.RotationValue) && string.IsNullOrWhiteSpace(options.RotationFile))
        {
            return new Pepper(key);
        }

        var other = !string.IsNullOrWhiteSpace(options.RotationValue)
            ? Decode(options.RotationValue, $"{PepperOptions.SectionName}:RotationValue", options.MinimumBytes)
            : Decode(ReadFile(options.RotationFile!, "RotationFile"), $"{PepperOptions.SectionName}:RotationFile ({options.RotationFile})", options.MinimumBytes);
        if (CryptographicOperations.FixedTimeEquals(key, other))
        {
            throw new OptionsValidationException(PepperOptions.SectionName, typeof(PepperOptions),
                [$"{PepperOptions.SectionName}:RotationFile (or RotationValue) holds the same pepper as {PepperOptions.SectionName}:File (or Value); during a rotation one is the old pepper and the other the new one."]);
        }

        return new Pepper(key, other);
    }

    private static byte[] LoadCurrent(PepperOptions options)
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
            encoded = ReadFile(options.File, "File");
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
                [$"No pepper configured. Set {PepperOptions.SectionName}:File (recommended) or {PepperOptions.SectionName}:Value to base64 of at least {options.MinimumBytes} random bytes, e.g. `openssl rand -base64 32`. It must be the same on every Broker instance; to change it, see Broker:Pepper:RotationFile."]);
        }

        return Decode(encoded, source, options.MinimumBytes);
    }

    private static string ReadFile(string path, string setting)
    {
        if (!System.IO.File.Exists(path))
        {
            throw new OptionsValidationException(PepperOptions.SectionName, typeof(PepperOptions),
                [$"{PepperOptions.SectionName}:{setting} points to '{path}', which does not exist."]);
        }

        return System.IO.File.ReadAllText(path);
    }

    private static byte[] Decode(string encoded, string source, int minimumBytes)
    {
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

        if (key.Length < minimumBytes)
        {
            throw new OptionsValidationException(PepperOptions.SectionName, typeof(PepperOptions),
                [$"The pepper from {source} has {key.Length} bytes; at least {minimumBytes} are required."]);
        }

        return key;
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
        OwnerOnlyFile.Create(path, value);
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
