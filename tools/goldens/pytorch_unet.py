"""The most used public PyTorch U-Net design ("Pytorch-UNet"), written from its description, and
its forwards for the 3D reference (tools/goldens/acs_reference.py).

    inc   = DoubleConv(n_channels, 64)
    down1..4 = MaxPool2d(2), DoubleConv         widths 128, 256, 512, 1024
    up1..4   = ConvTranspose2d(k=2, s=2) halving the channels, F.pad of the upsampled map to the
               skip connection's size ([dx // 2, dx - dx // 2, dy // 2, dy - dy // 2]),
               torch.cat([skip, up]), DoubleConv
    outc  = Conv2d 1x1 to n_classes
    DoubleConv = (Conv2d 3x3 without bias, BatchNorm2d, ReLU) twice

State-dict keys: `inc.double_conv.0.weight`, `down1.maxpool_conv.1.double_conv.0.weight`,
`up1.up.weight`, `up1.conv.double_conv.0.weight`, `outc.conv.weight`, ... Padding the upsampled
map to its skip connection's size lets the network run at any input size, odd sides included.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from seg_models import pad_to, randomise_bn

WIDTHS = (64, 128, 256, 512, 1024)


class DoubleConv(nn.Module):
    def __init__(self, cin, cout, mid=None):
        super().__init__()
        mid = mid or cout
        self.double_conv = nn.Sequential(
            nn.Conv2d(cin, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.double_conv(x)


class Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(cin, cout))

    def forward(self, x):
        return self.maxpool_conv(x)


class Up(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(cin, cout)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        diff_y = x2.size()[2] - x1.size()[2]
        diff_x = x2.size()[3] - x1.size()[3]
        x1 = F.pad(x1, [diff_x // 2, diff_x - diff_x // 2, diff_y // 2, diff_y - diff_y // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class OutConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=1)

    def forward(self, x):
        return self.conv(x)


class UNet(nn.Module):
    def __init__(self, n_channels=3, n_classes=2, widths=WIDTHS):
        super().__init__()
        self.n_channels, self.n_classes = n_channels, n_classes
        w0, w1, w2, w3, w4 = widths
        self.inc = DoubleConv(n_channels, w0)
        self.down1 = Down(w0, w1)
        self.down2 = Down(w1, w2)
        self.down3 = Down(w2, w3)
        self.down4 = Down(w3, w4)
        self.up1 = Up(w4, w3)
        self.up2 = Up(w3, w2)
        self.up3 = Up(w2, w1)
        self.up4 = Up(w1, w0)
        self.outc = OutConv(w0, n_classes)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)


def up_forward_nd(self, x1, x2):
    """Up.forward for 2 or 3 spatial axes: the same pad on every axis (D takes H's rule)."""
    return self.conv(torch.cat([x2, pad_to(self.up(x1), x2)], dim=1))


FORWARDS_3D = [(Up, up_forward_nd)]


def build(n_channels=3, n_classes=2, seed=0):
    """The U-Net with seeded weights, BatchNorm statistics away from (0, 1), and transposed
    convolution biases that are not zero (eval mode)."""
    torch.manual_seed(seed)
    m = UNet(n_channels, n_classes)
    randomise_bn(m, seed + 1)
    return m.eval()
