using Broker.Core.Secrets;
using Microsoft.Extensions.Options;

namespace Broker.Core.Tests.Secrets;

public sealed class PepperTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("broker-pepper-").FullName;

    [Fact]
    public void Load_WithNothingConfigured_FailsNamingTheSetting()
    {
        var ex = Assert.Throws<OptionsValidationException>(() => Pepper.Load(new PepperOptions()));
        Assert.Contains("Broker:Pepper:File", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_WithShortOrInvalidValue_Fails()
    {
        Assert.Contains("at least 32", Assert.Throws<OptionsValidationException>(() => Pepper.Load(new PepperOptions { Value = Convert.ToBase64String(new byte[16]) })).Message, StringComparison.Ordinal);
        Assert.Contains("not valid base64", Assert.Throws<OptionsValidationException>(() => Pepper.Load(new PepperOptions { Value = "not base64!" })).Message, StringComparison.Ordinal);
        Assert.Contains("does not exist", Assert.Throws<OptionsValidationException>(() => Pepper.Load(new PepperOptions { File = Path.Combine(_dir, "missing") })).Message, StringComparison.Ordinal);
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void Load_GenerateFile_CreatesOwnerOnlyFileOnceAndReusesIt()
    {
        var path = Path.Combine(_dir, "sub", "pepper.key");

        var first = Pepper.Load(new PepperOptions { GenerateFile = path });
        var content = File.ReadAllText(path);
        var second = Pepper.Load(new PepperOptions { GenerateFile = path });

        Assert.True(first.Key.SequenceEqual(second.Key));
        Assert.Equal(32, Convert.FromBase64String(content).Length);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
    }

    [Fact]
    public void Load_File_ReadsTrimmedBase64()
    {
        var path = Path.Combine(_dir, "pepper");
        File.WriteAllText(path, Convert.ToBase64String(new byte[48]) + "\n");

        Assert.Equal(48, Pepper.Load(new PepperOptions { File = path }).Key.Length);
    }

    [Fact]
    public void Load_Rotation_KeepsBothAndRefusesTheSamePepperTwiceOrABadOne()
    {
        string a = Convert.ToBase64String(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray()), b = Convert.ToBase64String(new byte[32]);
        var path = Path.Combine(_dir, "old.key");
        File.WriteAllText(path, a + "\n");

        var pepper = Pepper.Load(new PepperOptions { Value = b, RotationFile = path });

        Assert.Equal(Convert.FromBase64String(a), pepper.Other);
        Assert.Null(Pepper.Load(new PepperOptions { Value = b }).Other);
        Assert.Contains("same pepper", Assert.Throws<OptionsValidationException>(() => Pepper.Load(new PepperOptions { Value = a, RotationValue = a })).Message, StringComparison.Ordinal);
        Assert.Contains("RotationValue is not valid base64", Assert.Throws<OptionsValidationException>(() => Pepper.Load(new PepperOptions { Value = a, RotationValue = "nope!" })).Message, StringComparison.Ordinal);
        Assert.Contains("RotationFile points to", Assert.Throws<OptionsValidationException>(() => Pepper.Load(new PepperOptions { Value = a, RotationFile = Path.Combine(_dir, "missing") })).Message, StringComparison.Ordinal);
        Assert.Contains("at least 32", Assert.Throws<OptionsValidationException>(() => Pepper.Load(new PepperOptions { Value = a, RotationValue = Convert.ToBase64String(new byte[16]) })).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Id_IsStablePerPepper_AndNotThePepper()
    {
        var key = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();

        Assert.Equal(new Pepper(key).Id, new Pepper([.. key]).Id);
        Assert.NotEqual(new Pepper(key).Id, new Pepper(new byte[32]).Id);
        Assert.Matches("^[0-9a-f]{16}$", new Pepper(key).Id);
        Assert.DoesNotContain(Convert.ToHexStringLower(key)[..16], new Pepper(key).Id, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
